#include "quiver/client/endpoints.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

namespace {

// Splits "host:port" / "[v6]:port"; returns false on a malformed spelling.
bool split_host_port(std::string_view ep, std::string& host, int& port) {
  size_t colon;
  if (!ep.empty() && ep.front() == '[') {
    size_t close = ep.find(']');
    if (close == std::string_view::npos || close + 1 >= ep.size() || ep[close + 1] != ':') return false;
    host = std::string(ep.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = ep.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    host = std::string(ep.substr(0, colon));
    if (host.find(':') != std::string::npos) return false;  // bare IPv6 needs brackets
  }
  std::string_view p = ep.substr(colon + 1);
  if (p.empty()) return false;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || ptr != p.data() + p.size() || port < 1 || port > 65535) return false;
  return !host.empty();
}

}  // namespace

void validate_endpoint(const std::string& endpoint, const std::string& where) {
  if (endpoint.rfind("unix:", 0) == 0 && endpoint.size() > 5) return;
  std::string host;
  int port = 0;
  if (!split_host_port(endpoint, host, port))
    throw Error(ErrorCode::InvalidArgument,
                "bad server endpoint '" + endpoint + "': expected HOST:PORT, [IPv6]:PORT or unix:PATH",
                {.file = where});
}

std::vector<std::string> parse_endpoint_list(std::string_view text, const std::string& file) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  int64_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    std::string ep(line);
    try {
      validate_endpoint(ep);
    } catch (const Error& e) {
      throw Error(e.code(), e.message(), {.file = file, .offset = line_no});
    }
    if (seen.insert(ep).second) out.push_back(std::move(ep));
  }
  return out;
}

std::vector<std::string> resolve_dns(const std::string& name_port) {
  std::string host;
  int port = 0;
  if (!split_host_port(name_port, host, port))
    throw Error(ErrorCode::InvalidArgument, "bad DNS server name '" + name_port + "': expected NAME:PORT");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0)
    throw Error(ErrorCode::Unavailable, "cannot resolve server name '" + host + "': " + gai_strerror(rc));
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    std::string ep;
    if (ai->ai_family == AF_INET) {
      auto* sa = reinterpret_cast<sockaddr_in*>(ai->ai_addr);
      inet_ntop(AF_INET, &sa->sin_addr, buf, sizeof buf);
      ep = std::string(buf) + ":" + std::to_string(port);
    } else if (ai->ai_family == AF_INET6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(ai->ai_addr);
      inet_ntop(AF_INET6, &sa->sin6_addr, buf, sizeof buf);
      ep = "[" + std::string(buf) + "]:" + std::to_string(port);
    } else {
      continue;
    }
    if (seen.insert(ep).second) out.push_back(std::move(ep));
  }
  freeaddrinfo(res);
  if (out.empty()) throw Error(ErrorCode::Unavailable, "server name '" + host + "' resolved to no address");
  return out;
}

EndpointFile::EndpointFile(std::string path) : path_(std::move(path)) {}

bool EndpointFile::poll() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    last_error_ = "servers file '" + path_ + "' is missing; keeping " + std::to_string(endpoints_.size()) +
                  " known servers";
    return false;
  }
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  bool meta_same = mtime == mtime_ns_ && static_cast<int64_t>(st.st_size) == size_ && st.st_ino == inode_;
  if (meta_same) return false;
  std::string text;
  try {
    text = read_file(path_);
  } catch (const Error& e) {
    last_error_ = e.what();
    return false;
  }
  mtime_ns_ = mtime;
  size_ = static_cast<int64_t>(st.st_size);
  inode_ = st.st_ino;
  std::string h = sha256_hex(text);
  if (h == hash_) return false;
  std::vector<std::string> list;
  try {
    list = parse_endpoint_list(text, path_);
  } catch (const Error& e) {
    last_error_ = e.what();  // a half-written file: keep the last good list, retry next change
    mtime_ns_ = -1;
    return false;
  }
  if (list.empty() && !endpoints_.empty()) {
    // Most likely caught mid-rewrite (truncated); emptying the server set would strand every
    // request. Keep the last good list until the file lists servers again.
    last_error_ = "servers file '" + path_ + "' lists no servers; keeping " + std::to_string(endpoints_.size()) +
                  " known servers";
    mtime_ns_ = -1;
    return false;
  }
  hash_ = h;
  last_error_.clear();
  bool changed = list != endpoints_;
  endpoints_ = std::move(list);
  return changed;
}

Discovery::Discovery(DiscoveryOptions options) : options_(std::move(options)) {
  for (auto& e : options_.endpoints) validate_endpoint(e, "static endpoint list");
  if (!options_.servers_file.empty()) files_.emplace_back(options_.servers_file);
  dns_last_.resize(options_.dns_names.size());
}

bool Discovery::refresh() {
  errors_.clear();
  for (auto& f : files_) {
    f.poll();
    if (!f.last_error().empty()) errors_.push_back(f.last_error());
  }
  for (size_t i = 0; i < options_.dns_names.size(); ++i) {
    try {
      dns_last_[i] = resolve_dns(options_.dns_names[i]);
    } catch (const Error& e) {
      errors_.push_back(e.what());
    }
  }
  std::vector<std::string> merged;
  std::set<std::string> seen;
  auto add = [&](const std::vector<std::string>& v) {
    for (auto& e : v)
      if (seen.insert(e).second) merged.push_back(e);
  };
  add(options_.endpoints);
  for (auto& f : files_) add(f.endpoints());
  for (auto& d : dns_last_) add(d);
  bool changed = merged != merged_;
  merged_ = std::move(merged);
  return changed;
}

}  // namespace quiver::client
