// Events, ports, parameters and components.
#include <cxxabi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <sstream>

#include "flow/internal.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/core/util.hpp"
#include "quiver/flow/topology.hpp"

namespace quiver::flow {

std::string demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = (status == 0 && d) ? d : mangled;
  std::free(d);
  // Shorten the standard library's noise.
  auto replace_all = [&s](const std::string& from, const std::string& to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  };
  replace_all("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string");
  // Default allocators: "std::vector<Jet, std::allocator<Jet> >" -> "std::vector<Jet>".
  const std::string alloc = ", std::allocator<";
  for (size_t p = s.find(alloc); p != std::string::npos; p = s.find(alloc, p)) {
    size_t e = p + alloc.size();
    for (int depth = 1; e < s.size() && depth > 0; ++e) depth += s[e] == '<' ? 1 : s[e] == '>' ? -1 : 0;
    if (e + 1 < s.size() && s[e] == ' ' && s[e + 1] == '>') ++e;  // "T, std::allocator<T> >"
    s.erase(p, e - p);
  }
  return s;
}

std::string product_name(const ProductKey& k) {
  std::string s = demangle(k.type.name());
  s += " '";
  s += k.tag;
  s += "'";
  return s;
}

namespace detail {
Error to_error(std::exception_ptr e, const std::string& component) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    if (!err.where().node.empty()) return err;
    ErrorWhere w = err.where();
    w.node = component;
    return Error(err.code(), err.message(), w);
  } catch (const std::exception& ex) {
    return Error(ErrorCode::Internal, ex.what(), ErrorWhere{.node = component});
  } catch (...) {
    return Error(ErrorCode::Internal, "unknown exception", ErrorWhere{.node = component});
  }
}
}  // namespace detail

// ---------------------------------------------------------------- event
Event::~Event() = default;

size_t Event::find_index(const ProductKey& key, bool must_exist) const {
  size_t i = topo_->find(key);
  if (i == Topology::npos) {
    if (!must_exist) return static_cast<size_t>(-1);
    throw Error(ErrorCode::NotFound,
                "event " + std::to_string(number_) + ": no component produces " + product_name(key));
  }
  return i;
}

bool Event::has_index(size_t index) const {
  return index != static_cast<size_t>(-1) &&
         slots_[index]->present_gen.load(std::memory_order_acquire) == gen_;
}

const SlotBase& Event::get_slot(size_t index) const {
  const SlotBase& s = *slots_[index];
  if (s.present_gen.load(std::memory_order_acquire) == gen_) return s;
  const Topology::Product& p = topo_->products[index];
  int64_t f = p.factory;
  if (f < 0) {
    throw Error(ErrorCode::NotFound,
                "event " + std::to_string(number_) + ": product " + product_name(p.key) +
                    " is not available (producer '" + p.producer->name() +
                    "' did not fill it; sources and async factories run before processors)");
  }
  run_factory(static_cast<size_t>(f));
  if (s.present_gen.load(std::memory_order_acquire) != gen_) {
    throw Error(ErrorCode::Internal, "event " + std::to_string(number_) + ": factory did not publish " +
                                         product_name(p.key),
                ErrorWhere{.node = p.producer->name()});
  }
  return s;
}

void Event::run_factory(size_t f) const {
  detail::FactoryState& st = fstate_[f];
  uint64_t claimed = st.claim_gen.load(std::memory_order_relaxed);
  if (st.done_gen.load(std::memory_order_acquire) != gen_) {
    if (claimed != gen_ &&
        st.claim_gen.compare_exchange_strong(claimed, gen_, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      Factory* fac = topo_->factories[f];
      Event& self = const_cast<Event&>(*this);
      try {
        fac->process(self);
        for (auto* o : fac->outputs()) o->publish(self);
      } catch (...) {
        st.err = std::make_exception_ptr(detail::to_error(std::current_exception(), fac->name()));
        st.err_gen = gen_;
      }
      st.done_gen.store(gen_, std::memory_order_release);
      if (st.waiting.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lk(st.m);
        st.waiting.store(false, std::memory_order_relaxed);
        st.cv.notify_all();
      }
    } else {
      // Another thread runs it for this event. The flag and the done store are not ordered against
      // each other (that would cost the common path a fence), so a wake-up can be missed: the wait
      // re-checks on a short timeout instead of relying on it.
      std::unique_lock<std::mutex> lk(st.m);
      while (st.done_gen.load(std::memory_order_acquire) != gen_) {
        st.waiting.store(true, std::memory_order_relaxed);
        st.cv.wait_for(lk, std::chrono::microseconds(200));
      }
    }
  }
  if (st.err_gen == gen_) std::rethrow_exception(st.err);
}

// ---------------------------------------------------------------- ports, parameters
InputBase::InputBase(Component* owner, std::type_index type, std::string tag) : key_{type, std::move(tag)} {
  owner->inputs_.push_back(this);
}
OutputBase::OutputBase(Component* owner, std::type_index type, std::string tag) : key_{type, std::move(tag)} {
  owner->outputs_.push_back(this);
}
ParameterBase::ParameterBase(Component* owner, std::string name, std::string help, bool required)
    : name_(std::move(name)), help_(std::move(help)), required_(required) {
  owner->params_.push_back(this);
}

namespace {
[[noreturn]] void bad_value(const std::string& key, const std::string& text, const char* type) {
  throw Error(ErrorCode::InvalidArgument,
              "parameter '" + key + "': cannot read '" + text + "' as " + type);
}
std::string trim(const std::string& s) { return std::string(quiver::trim(s)); }
template <class I>
I parse_int(const std::string& key, const std::string& text, const char* type) {
  std::string t = trim(text);
  I v{};
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size() || t.empty()) bad_value(key, text, type);
  return v;
}
double parse_double(const std::string& key, const std::string& text) {
  std::string t = trim(text);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size()) bad_value(key, text, "a number");
  return v;
}
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  std::stringstream ss(text);
  while (std::getline(ss, cur, ',')) {
    cur = trim(cur);
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}
}  // namespace

template <> int parse_parameter<int>(const std::string& k, const std::string& t) { return parse_int<int>(k, t, "an integer"); }
template <> int64_t parse_parameter<int64_t>(const std::string& k, const std::string& t) { return parse_int<int64_t>(k, t, "an integer"); }
template <> uint64_t parse_parameter<uint64_t>(const std::string& k, const std::string& t) { return parse_int<uint64_t>(k, t, "a non-negative integer"); }
template <> double parse_parameter<double>(const std::string& k, const std::string& t) { return parse_double(k, t); }
template <> float parse_parameter<float>(const std::string& k, const std::string& t) { return static_cast<float>(parse_double(k, t)); }
template <> std::string parse_parameter<std::string>(const std::string&, const std::string& t) { return t; }
template <> bool parse_parameter<bool>(const std::string& k, const std::string& t) {
  std::string s = trim(t);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off") return false;
  bad_value(k, t, "a boolean");
}
template <> std::vector<std::string> parse_parameter<std::vector<std::string>>(const std::string&, const std::string& t) {
  return split_list(t);
}
template <> std::vector<double> parse_parameter<std::vector<double>>(const std::string& k, const std::string& t) {
  std::vector<double> v;
  for (auto& s : split_list(t)) v.push_back(parse_double(k, s));
  return v;
}
template <> std::vector<int> parse_parameter<std::vector<int>>(const std::string& k, const std::string& t) {
  std::vector<int> v;
  for (auto& s : split_list(t)) v.push_back(parse_int<int>(k, s, "an integer"));
  return v;
}

template <> std::string parameter_to_string<int>(const int& v) { return std::to_string(v); }
template <> std::string parameter_to_string<int64_t>(const int64_t& v) { return std::to_string(v); }
template <> std::string parameter_to_string<uint64_t>(const uint64_t& v) { return std::to_string(v); }
template <> std::string parameter_to_string<double>(const double& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
template <> std::string parameter_to_string<float>(const float& v) { return parameter_to_string<double>(v); }
template <> std::string parameter_to_string<bool>(const bool& v) { return v ? "true" : "false"; }
template <> std::string parameter_to_string<std::string>(const std::string& v) { return v; }
template <> std::string parameter_to_string<std::vector<std::string>>(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}
template <> std::string parameter_to_string<std::vector<double>>(const std::vector<double>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + parameter_to_string(x);
  return s;
}
template <> std::string parameter_to_string<std::vector<int>>(const std::vector<int>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

LogLevel parse_log_level(const std::string& key, const std::string& text) {
  std::string s = trim(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "trace") return LogLevel::Trace;
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn" || s == "warning") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  if (s == "off" || s == "none") return LogLevel::Off;
  throw Error(ErrorCode::InvalidArgument,
              "parameter '" + key + "': unknown log level '" + text + "' (trace, debug, info, warn, error, off)");
}

// ---------------------------------------------------------------- components
Component::Component() = default;
Component::~Component() = default;

void Component::log(LogLevel level, const std::string& message) const {
  if (!log_enabled(level)) return;
  spdlog::level::level_enum l = spdlog::level::info;
  switch (level) {
    case LogLevel::Trace: l = spdlog::level::trace; break;
    case LogLevel::Debug: l = spdlog::level::debug; break;
    case LogLevel::Info: l = spdlog::level::info; break;
    case LogLevel::Warn: l = spdlog::level::warn; break;
    case LogLevel::Error: l = spdlog::level::err; break;
    case LogLevel::Off: return;
  }
  spdlog::log(l, "[{}] {}", name_, message);
}

Runtime& Component::runtime() const {
  if (!runtime_) throw Error(ErrorCode::Internal, "runtime() used outside a run", ErrorWhere{.node = name_});
  return *runtime_;
}

}  // namespace quiver::flow
