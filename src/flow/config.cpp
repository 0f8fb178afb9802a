// TOML configuration files and dlopen plugins.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <toml++/toml.h>

#include "flow/internal.hpp"

namespace fs = std::filesystem;

namespace quiver::flow {

namespace {
std::string scalar_text(const toml::node& n, const std::string& key, const std::string& file) {
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto d = n.as_floating_point()) {
    std::ostringstream os;
    os.precision(17);
    os << d->get();
    return os.str();
  }
  if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
  if (auto a = n.as_array()) {
    std::string out;
    for (auto& el : *a) {
      if (!out.empty()) out += ",";
      out += scalar_text(el, key, file);
    }
    return out;
  }
  throw Error(ErrorCode::Parse, "key '" + key + "': unsupported value type (use strings, numbers, booleans, arrays)",
              ErrorWhere{.file = file});
}

void flatten(const toml::table& t, const std::string& prefix, const std::string& file,
             std::map<std::string, std::string>& out) {
  for (auto& [k, v] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto sub = v.as_table()) flatten(*sub, key, file, out);
    else out[key] = scalar_text(v, key, file);
  }
}
}  // namespace

void Application::load_config(const std::string& path, bool override_existing) {
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, "config file not found", ErrorWhere{.file = path});
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw Error(ErrorCode::Parse, std::string(e.description()), ErrorWhere{.file = path,
                .offset = static_cast<int64_t>(e.source().begin.line)});
  }
  std::map<std::string, std::string> flat;
  flatten(t, "", path, flat);
  for (auto& [k, v] : flat)
    if (override_existing || !params_.count(k)) params_[k] = v;
  config_dir_ = fs::absolute(fs::path(path)).parent_path().string();
}

std::vector<std::string> Application::plugin_search_path() const {
  std::vector<std::string> dirs;
  auto add_list = [&](const std::string& list, const std::string& base) {
    std::stringstream ss(list);
    std::string d;
    while (std::getline(ss, d, ':')) {
      if (d.empty()) continue;
      fs::path p(d);
      if (p.is_relative() && !base.empty()) p = fs::path(base) / p;
      dirs.push_back(p.string());
    }
  };
  if (const char* env = std::getenv("QUIVER_PLUGIN_PATH")) add_list(env, "");
  if (auto pp = parameter("plugin_path")) {
    mark_used("plugin_path");
    add_list(*pp, config_dir_);
  }
#ifdef QUIVER_FLOW_BUILD_PLUGIN_DIR
  dirs.push_back(QUIVER_FLOW_BUILD_PLUGIN_DIR);
#endif
#ifdef QUIVER_FLOW_INSTALL_PLUGIN_DIR
  dirs.push_back(QUIVER_FLOW_INSTALL_PLUGIN_DIR);
#endif
  return dirs;
}

void Application::load_plugin(const std::string& name) {
  std::vector<std::string> candidates;
  std::vector<std::string> dirs = plugin_search_path();
  if (name.find('/') != std::string::npos) {
    candidates.push_back(name);
  } else {
    for (auto& d : dirs) {
      candidates.push_back((fs::path(d) / ("lib" + name + ".so")).string());
      candidates.push_back((fs::path(d) / (name + ".so")).string());
    }
  }
  std::string found;
  for (auto& c : candidates)
    if (fs::exists(c)) {
      found = c;
      break;
    }
  if (found.empty()) {
    std::string where;
    for (auto& d : dirs) where += (where.empty() ? "" : ":") + d;
    throw Error(ErrorCode::NotFound,
                "plugin '" + name + "' not found (searched QUIVER_PLUGIN_PATH and plugin_path: " +
                    (where.empty() ? std::string("<empty>") : where) + ")");
  }
  for (auto& p : plugins_)
    if (p->path == found) return;  // already loaded
  void* h = dlopen(found.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h) throw Error(ErrorCode::Internal, std::string("cannot load plugin: ") + dlerror(), ErrorWhere{.file = found});
  using InitFn = void (*)(Application&);
  auto init = reinterpret_cast<InitFn>(dlsym(h, "quiver_flow_plugin"));
  if (!init) {
    dlclose(h);
    throw Error(ErrorCode::InvalidArgument,
                "plugin '" + name + "' has no entry point quiver_flow_plugin (use QUIVER_FLOW_PLUGIN)",
                ErrorWhere{.file = found});
  }
  auto p = std::make_shared<Plugin>();
  p->path = found;
  p->handle = h;
  plugins_.push_back(p);
  try {
    init(*this);
  } catch (const Error& e) {
    throw Error(e.code(), "plugin '" + name + "': " + e.message(), ErrorWhere{.file = found});
  }
}

void Application::load_plugins() {
  auto list = parameter("plugins");
  mark_used("plugins");
  if (!list) return;
  for (auto& n : parse_parameter<std::vector<std::string>>("plugins", *list)) load_plugin(n);
}

}  // namespace quiver::flow
