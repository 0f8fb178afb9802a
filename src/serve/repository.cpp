#include "serve/repository.hpp"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "quiver/backends/backends.hpp"
#include "quiver/core/util.hpp"

namespace fs = std::filesystem;

namespace quiver::serve {

const IOSpec* ModelVersion::input(std::string_view n) const {
  for (const auto& s : inputs) if (s.name == n) return &s;
  return nullptr;
}
const IOSpec* ModelVersion::output(std::string_view n) const {
  for (const auto& s : outputs) if (s.name == n) return &s;
  return nullptr;
}
// Class labels of the outputs that name a label_filename (a plain file in the model directory,
// one label per line, as Triton reads it).
static void load_labels(ModelVersion& mv, const inference::ModelConfig& c, const fs::path& model_dir) {
  for (const auto& o : c.output()) {
    const std::string& f = o.label_filename();
    if (f.empty()) continue;
    ErrorWhere w;
    w.model = mv.name;
    w.tensor = o.name();
    w.file = (model_dir / f).string();
    if (f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
      throw Error(ErrorCode::InvalidArgument, "label_filename '" + f + "' must be a plain file name in the model directory", w);
    std::error_code ec;
    if (!fs::is_regular_file(model_dir / f, ec)) throw Error(ErrorCode::NotFound, "label file not found", w);
    auto labels = std::make_shared<std::vector<std::string>>();
    std::string text = read_file((model_dir / f).string());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      labels->push_back(std::move(line));
      pos = nl == std::string::npos ? text.size() : nl + 1;
    }
    for (auto& s : mv.outputs)
      if (s.name == o.name()) s.labels = labels;
  }
}

void bind_io(ModelVersion& mv, const inference::ModelConfig& c) {
  mv.max_batch = c.max_batch_size();
  const ModelInfo& mi = mv.model->info();
  auto bind = [](const auto& tensors, const std::vector<TensorInfo>& model_side, std::vector<IOSpec>& out) {
    out.clear();
    for (const auto& t : tensors) {
      IOSpec s;
      s.name = t.name();
      s.dtype = *config_dtype(t.data_type());
      s.dims.assign(t.dims().begin(), t.dims().end());
      for (size_t i = 0; i < model_side.size(); ++i)
        if (model_side[i].name == s.name) s.model_index = i;
      out.push_back(std::move(s));
    }
  };
  bind(c.input(), mi.inputs, mv.inputs);
  bind(c.output(), mi.outputs, mv.outputs);
}

std::shared_ptr<ModelVersion> identity_model_version(const std::string& config_text, const std::string& name) {
  auto c = parse_model_config(config_text, name);
  c.set_name(name);
  auto mv = std::make_shared<ModelVersion>();
  mv->name = name;
  mv->version = 1;
  mv->version_str = "1";
  mv->engine = "identity";
  LoadedModel lm = load_repository_version(c, "", "1", config_text, "", 1);
  c = std::move(lm.config);
  mv->model = std::move(lm.model);
  bind_io(*mv, c);
  mv->config = std::make_shared<inference::ModelConfig>(c);
  return mv;
}

ModelVersion::~ModelVersion() {
  // The last reference can be dropped by a request finishing on one of this version's own
  // instance threads; a thread cannot join itself, so the scheduler is released elsewhere.
  if (scheduler && scheduler->on_worker_thread()) {
    std::thread([s = std::move(scheduler)]() mutable { s.reset(); }).detach();
  }
}

void ModelRepository::check_model_name(const std::string& name) {
  bool bad = name.empty() || name == "." || name == ".." || name[0] == '.' || name.size() > 255;
  for (char ch : name)
    if (ch == '/' || ch == '\\' || ch == '\0' || static_cast<unsigned char>(ch) < 0x20) bad = true;
  if (bad) throw Error(ErrorCode::InvalidArgument, "invalid model name (must be a plain directory name in the repository)",
                       {name});
}

ModelRepository::ModelRepository(RepositoryOptions opt) : opt_(std::move(opt)) {
  std::error_code ec;
  if (!fs::is_directory(opt_.root, ec)) {
    ErrorWhere w;
    w.file = opt_.root;
    throw Error(ErrorCode::NotFound, "model repository is not a directory", w);
  }
}

ModelRepository::~ModelRepository() { shutdown(); }

static std::vector<std::string> model_dirs(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    if (!n.empty() && n[0] != '.' && e.is_directory(ec)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ModelRepository::fingerprint(const std::string& name) const {
  std::string fp;
  std::error_code ec;
  fs::path dir = fs::path(opt_.root) / name;
  std::vector<std::string> items;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    auto st = it->status(e2);
    std::string s = it->path().lexically_relative(dir).string();
    if (fs::is_regular_file(st)) {
      s += ":" + std::to_string(it->file_size(e2)) + ":" +
           std::to_string(it->last_write_time(e2).time_since_epoch().count());
    }
    items.push_back(s);
  }
  std::sort(items.begin(), items.end());
  for (auto& s : items) fp += s + "\n";
  return fp;
}

std::map<int64_t, std::shared_ptr<ModelVersion>> ModelRepository::load_versions(const std::string& name,
                                                                                const std::string& config_override,
                                                                                const std::string& model_dir) {
  check_model_name(name);
  const fs::path dir = model_dir.empty() ? fs::path(opt_.root) / name : fs::path(model_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(ErrorCode::NotFound,
                "failed to load '" + name + "', failed to poll from model repository: no directory '" + name +
                    "' in " + opt_.root,
                {name});
  // Base config: override (RepositoryModelLoad "config" parameter), config.pbtxt, or empty.
  inference::ModelConfig base;
  fs::path cfg_path = dir / "config.pbtxt";
  std::string cfg_text;
  if (!config_override.empty()) {
    // The override is JSON in Triton; Quiver accepts the text format here.
    base = parse_model_config(config_override, "(load request config)");
    cfg_text = config_override;
  } else if (fs::exists(cfg_path, ec)) {
    cfg_text = read_file(cfg_path.string());
    base = parse_model_config(cfg_text, cfg_path.string());
  }
  if (!base.name().empty() && base.name() != name)
    throw Error(ErrorCode::InvalidArgument, "config.pbtxt name '" + base.name() + "' does not match the directory name",
                {name});
  base.set_name(name);
  std::vector<int64_t> chosen = select_versions(base, version_directories(dir.string(), name));
  std::map<int64_t, std::shared_ptr<ModelVersion>> out;
  for (int64_t v : chosen) {
    const std::string vs = std::to_string(v);
    const std::string vdir = (dir / vs).string();
    // Ensemble steps find their models among those loaded (the version each one's policy serves
    // unless the step pins one).
    ModelResolver resolver = [this](const std::string& n, int64_t ver) {
      return get(n, ver < 0 ? "" : std::to_string(ver))->model;
    };
    LoadedModel lm =
        load_repository_version(base, vdir, vs, cfg_text, cfg_path.string(), opt_.intra_op_threads, resolver);
    inference::ModelConfig c = std::move(lm.config);
    auto mv = std::make_shared<ModelVersion>();
    mv->name = name;
    mv->version = v;
    mv->version_str = vs;
    mv->engine = lm.engine;
    mv->model = std::move(lm.model);
    mv->sha256 = lm.sha256;
    mv->path = lm.path;
    bind_io(*mv, c);
    try {
      load_labels(*mv, c, dir);
    } catch (const Error& e) {
      throw e.with_context({name});
    }
    std::sort(mv->inputs.begin(), mv->inputs.end(), [](auto& a, auto& b) { return a.model_index < b.model_index; });
    std::sort(mv->outputs.begin(), mv->outputs.end(), [](auto& a, auto& b) { return a.model_index < b.model_index; });
    mv->config = std::make_shared<inference::ModelConfig>(std::move(c));
    mv->scheduler = std::make_unique<Scheduler>(mv->model, scheduler_options(*mv->config),
                                                "model '" + name + "' version " + vs);
    // Sized ahead, then warmed: no first request pays a fresh state's arena growth.
    const auto& params = mv->config->parameters();
    const auto ps = params.find("prepare_state");
    const PrepareReport prep = mv->scheduler->prepare(ps == params.end() ? "" : ps->second.string_value(),
                                                      {.model = name, .node = "config parameter 'prepare_state'"});
    mv->prepared_bytes = prep.bytes;
    std::fprintf(stderr, "quiver serve: model '%s' version %s: %s\n", name.c_str(), vs.c_str(), prep.summary().c_str());
    warm_up(*mv, dir.string());
    out[v] = std::move(mv);
  }
  return out;
}

void ModelRepository::retire(std::map<int64_t, std::shared_ptr<ModelVersion>>& old) {
  // Stop accepting, let queued and executing requests finish, then release.
  for (auto& [v, mv] : old) mv->scheduler->stop();
  for (auto& [v, mv] : old) mv->scheduler->drain();
  old.clear();
}

namespace {

// "<version>/<path>" of a file override: a version number, then 1-16 plain names (no empty, ".",
// ".." or hidden components, no backslashes or control characters), so that the file lands inside
// the override directory.
void check_override_path(const std::string& model, const std::string& path) {
  const ErrorWhere w{.model = model, .file = path};
  auto bad = [&](const std::string& why) {
    throw Error(ErrorCode::InvalidArgument, "file override 'file:" + path + "': " + why, w);
  };
  if (path.size() > 1024) bad("path longer than 1024 characters");
  const size_t slash = path.find('/');
  const std::string version = path.substr(0, slash);
  if (version.empty() || version.size() > 18 || version.find_first_not_of("0123456789") != std::string::npos)
    bad("must start with a version number ('file:<version>/<name>')");
  if (slash == std::string::npos || slash + 1 == path.size()) bad("names no file after the version");
  size_t pos = slash + 1, parts = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(pos, end - pos);
    if (part.empty() || part[0] == '.' || part.size() > 255) bad("'" + part + "' is not a plain file or directory name");
    for (char c : part)
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20) bad("'" + part + "' is not a plain file or directory name");
    if (++parts > 16) bad("more than 16 path components");
    pos = end + 1;
  }
}

// Writes the override files into a fresh private directory; the returned handle removes it.
std::shared_ptr<const std::string> write_override_dir(const std::string& model, const std::vector<ModelFile>& files,
                                                      int64_t max_bytes) {
  if (files.size() > 4096)
    throw Error(ErrorCode::InvalidArgument, std::to_string(files.size()) + " file overrides (at most 4096)", {model});
  uint64_t total = 0;
  for (const auto& f : files) {
    check_override_path(model, f.path);
    total += f.content.size();
  }
  if (total > static_cast<uint64_t>(std::max<int64_t>(0, max_bytes)))
    throw Error(ErrorCode::ResourceExhausted,
                "file overrides of " + std::to_string(total) + " bytes exceed the " + std::to_string(max_bytes) +
                    "-byte limit",
                {model});
  std::string tmpl = (fs::temp_directory_path() / ("quiver-override-" + model + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data()))
    throw Error(ErrorCode::Internal, "cannot create a directory for the file overrides", {.model = model, .file = tmpl});
  auto dir = std::shared_ptr<const std::string>(new std::string(tmpl), [](const std::string* d) {
    std::error_code ec;
    fs::remove_all(*d, ec);
    delete d;
  });
  for (const auto& f : files) {
    const fs::path target = fs::path(*dir) / f.path;
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out.write(f.content.data(), static_cast<std::streamsize>(f.content.size()));
    if (ec || !out.flush())
      throw Error(ErrorCode::Internal, "cannot write the file override", {.model = model, .file = target.string()});
  }
  return dir;
}

}  // namespace

void ModelRepository::load(const std::string& name, const std::string& config_override,
                           const std::vector<ModelFile>& files) {
  check_model_name(name);
  if (!files.empty() && config_override.empty())
    throw Error(ErrorCode::InvalidArgument,
                "failed to load '" + name + "': file overrides need the 'config' parameter (the configuration of "
                "the override model directory)",
                {name});
  std::shared_ptr<const std::string> override_dir;
  if (!files.empty()) {
    try {
      override_dir = write_override_dir(name, files, opt_.max_override_bytes);
    } catch (const Error& e) {
      throw Error(e.code(), "failed to load '" + name + "': " + e.message(), e.where());
    }
  }
  std::lock_guard lg(load_mu_);
  {
    std::unique_lock lk(mu_);
    models_[name].state = "LOADING";
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> fresh;
  std::string fp = fingerprint(name);
  try {
    fresh = load_versions(name, config_override, override_dir ? *override_dir : std::string());
  } catch (const Error& raw) {
    // Triton's wording first ("failed to load 'NAME'..."), what went wrong and where after it.
    const std::string prefix = "failed to load '" + name + "'";
    const Error e = raw.message().rfind(prefix, 0) == 0
                        ? raw.with_context({name})
                        : Error(raw.code(), prefix + ": " + raw.message(), raw.where()).with_context({name});
    std::unique_lock lk(mu_);
    auto& en = models_[name];
    std::map<int64_t, std::shared_ptr<ModelVersion>> old;
    old.swap(en.versions);
    en.state = "UNAVAILABLE";
    en.reason = format_error_message_first(e.code(), e.message(), e.where());
    en.fingerprint = fp;
    auto old_dir = std::move(en.override_dir);
    lk.unlock();
    retire(old);
    throw e;
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> old;
  std::shared_ptr<const std::string> old_dir;
  {
    std::unique_lock lk(mu_);
    auto& en = models_[name];
    old.swap(en.versions);
    en.versions = std::move(fresh);
    en.state = "READY";
    en.reason.clear();
    en.fingerprint = fp;
    old_dir = std::exchange(en.override_dir, std::move(override_dir));
  }
  retire(old);
}

void ModelRepository::unload(const std::string& name) {
  check_model_name(name);
  std::lock_guard lg(load_mu_);
  std::map<int64_t, std::shared_ptr<ModelVersion>> old;
  std::shared_ptr<const std::string> old_dir;  // released after the versions that read it
  {
    std::unique_lock lk(mu_);
    auto it = models_.find(name);
    if (it == models_.end() || it->second.versions.empty()) {
      throw Error(ErrorCode::NotFound, "model is not loaded", {name});
    }
    old.swap(it->second.versions);
    it->second.state = "UNAVAILABLE";
    it->second.reason = "unloaded";
    old_dir = std::move(it->second.override_dir);
  }
  retire(old);
}

std::vector<std::string> ModelRepository::load_startup() {
  std::vector<std::string> names;
  if (opt_.control == ModelControl::Explicit) {
    for (const auto& n : opt_.startup_models) {
      if (n == "*") {
        auto all = model_dirs(opt_.root);
        names.insert(names.end(), all.begin(), all.end());
      } else {
        names.push_back(n);
      }
    }
  } else {
    names = model_dirs(opt_.root);
  }
  std::vector<std::string> errors;
  load_in_order(names, errors);
  return errors;
}

// Ensembles need their composing models loaded first (and an ensemble may compose another), so
// they load after the others, in passes until a pass makes no progress.
void ModelRepository::load_in_order(const std::vector<std::string>& names, std::vector<std::string>& errors) {
  auto is_ensemble = [this](const std::string& n) {
    std::error_code ec;
    const fs::path cfg = fs::path(opt_.root) / n / "config.pbtxt";
    if (!fs::exists(cfg, ec)) return false;
    try {
      return parse_model_config(read_file(cfg.string()), cfg.string()).platform() == "ensemble";
    } catch (const Error&) {
      return false;  // load() reports the parse error
    }
  };
  std::vector<std::string> pending;
  for (const auto& n : names) {
    if (is_ensemble(n)) {
      pending.push_back(n);
      continue;
    }
    try {
      load(n);
    } catch (const Error& e) {
      errors.push_back(format_error_message_first(e.code(), e.message(), e.where()));
    }
  }
  while (!pending.empty()) {
    std::vector<std::string> failed, why;
    for (const auto& n : pending) {
      try {
        load(n);
      } catch (const Error& e) {
        failed.push_back(n);
        why.push_back(format_error_message_first(e.code(), e.message(), e.where()));
      }
    }
    if (failed.size() == pending.size()) {
      errors.insert(errors.end(), why.begin(), why.end());
      break;
    }
    pending = std::move(failed);
  }
}

std::vector<std::string> ModelRepository::poll() {
  std::vector<std::string> errors;
  auto dirs = model_dirs(opt_.root);
  std::vector<std::string> to_unload, to_load;
  {
    std::shared_lock lk(mu_);
    for (const auto& [n, e] : models_)
      if (!std::binary_search(dirs.begin(), dirs.end(), n) && !e.versions.empty()) to_unload.push_back(n);
    for (const auto& n : dirs) {
      auto it = models_.find(n);
      if (it == models_.end() || it->second.fingerprint != fingerprint(n)) to_load.push_back(n);
    }
  }
  for (const auto& n : to_unload) {
    try { unload(n); } catch (const Error& e) { errors.push_back(format_error_message_first(e.code(), e.message(), e.where())); }
  }
  load_in_order(to_load, errors);
  return errors;
}

void ModelRepository::shutdown() {
  std::vector<std::shared_ptr<ModelVersion>> all;
  {
    std::shared_lock lk(mu_);
    for (auto& [n, e] : models_)
      for (auto& [v, mv] : e.versions) all.push_back(mv);
  }
  for (auto& mv : all) mv->scheduler->stop();
  for (auto& mv : all) mv->scheduler->drain();
}

std::shared_ptr<ModelVersion> ModelRepository::get(const std::string& name, const std::string& version) const {
  std::shared_lock lk(mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.versions.empty()) {
    if (it != models_.end() && !it->second.reason.empty() && it->second.reason != "unloaded")
      throw Error(ErrorCode::Unavailable,
                  "Request for unknown model: '" + name + "' has no available versions: " + it->second.reason, {name});
    throw Error(ErrorCode::NotFound, "Request for unknown model: '" + name + "' is not found", {name});
  }
  const auto& vs = it->second.versions;
  if (version.empty()) return vs.rbegin()->second;
  int64_t v = -1;
  if (!version.empty() && version.size() <= 18 && std::all_of(version.begin(), version.end(), ::isdigit))
    v = std::stoll(version);
  auto vit = vs.find(v);
  if (vit == vs.end())
    throw Error(ErrorCode::NotFound, "Request for unknown model: '" + name + "' version " + version + " is not found",
                {name});
  return vit->second;
}

std::vector<std::shared_ptr<ModelVersion>> ModelRepository::versions(const std::string& name) const {
  std::shared_lock lk(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  auto it = models_.find(name);
  if (it != models_.end())
    for (auto& [v, mv] : it->second.versions) out.push_back(mv);
  return out;
}

std::vector<std::shared_ptr<ModelVersion>> ModelRepository::all_versions() const {
  std::shared_lock lk(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (auto& [n, e] : models_)
    for (auto& [v, mv] : e.versions) out.push_back(mv);
  return out;
}

std::vector<ModelState> ModelRepository::index() const {
  std::vector<ModelState> out;
  auto dirs = model_dirs(opt_.root);
  std::shared_lock lk(mu_);
  for (const auto& n : dirs) {
    auto it = models_.find(n);
    if (it == models_.end()) {
      out.push_back({n, "", "", ""});
      continue;
    }
    if (it->second.versions.empty()) {
      out.push_back({n, "", it->second.state, it->second.reason});
    } else {
      for (auto& [v, mv] : it->second.versions) out.push_back({n, mv->version_str, it->second.state, ""});
    }
  }
  return out;
}

bool ModelRepository::all_ready() const {
  std::shared_lock lk(mu_);
  for (auto& [n, e] : models_)
    if (e.state == "LOADING") return false;
  return true;
}

SchedulerOptions scheduler_options(const inference::ModelConfig& c) {
  SchedulerOptions o;
  o.instances = 0;
  for (const auto& g : c.instance_group()) o.instances += std::max(1, g.count());
  if (o.instances <= 0) o.instances = 1;
  o.max_batch = c.max_batch_size();
  auto policy = [](const inference::ModelQueuePolicy& p) {
    QueuePolicy q;
    q.delay_on_timeout = p.timeout_action() == inference::ModelQueuePolicy::DELAY;
    q.default_timeout_us = p.default_timeout_microseconds();
    q.allow_timeout_override = p.allow_timeout_override();
    q.max_queue_size = p.max_queue_size();
    return q;
  };
  if (c.has_dynamic_batching()) {
    const auto& db = c.dynamic_batching();
    o.dynamic_batching = c.max_batch_size() > 0;
    for (int p : db.preferred_batch_size()) o.preferred_batch_sizes.push_back(p);
    o.max_queue_delay_us = db.max_queue_delay_microseconds();
    o.preserve_ordering = db.preserve_ordering();
    o.priority_levels = db.priority_levels();
    o.default_priority = db.default_priority_level();
    if (db.has_default_queue_policy()) o.default_policy = policy(db.default_queue_policy());
    for (const auto& [lvl, p] : db.priority_queue_policy()) o.priority_policy[lvl] = policy(p);
  }
  return o;
}

}  // namespace quiver::serve
