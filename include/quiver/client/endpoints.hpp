// Server discovery for the inference client: a static list, a file of endpoints re-read when it
// changes, and DNS names resolving to several addresses. Endpoints are "host:port" strings
// ("[v6addr]:port" for IPv6, "unix:/path" passed through as gRPC understands it).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::client {

struct DiscoveryOptions {
  std::vector<std::string> endpoints;  // static "host:port" list
  std::string servers_file;            // one endpoint per line, '#' comments; re-read when it changes
  std::vector<std::string> dns_names;  // "name:port": every A/AAAA record becomes one server
};

// Checks one endpoint spelling; throws quiver::Error(InvalidArgument) naming it (and `where`).
void validate_endpoint(const std::string& endpoint, const std::string& where = "");

// Parses a servers file's text: one endpoint per line, blank lines and '#' comments ignored,
// duplicates dropped (first occurrence kept). Errors name the file and line.
std::vector<std::string> parse_endpoint_list(std::string_view text, const std::string& file = "");

// Resolves "name:port" with getaddrinfo to every distinct address ("1.2.3.4:port", "[::1]:port"),
// in resolver order. Throws quiver::Error(Unavailable) naming the name when it does not resolve.
std::vector<std::string> resolve_dns(const std::string& name_port);

// Watches a servers file: poll() re-reads it when its modification time, size or inode changed
// (and also when the content hash changed for same-second rewrites) and reports whether the list
// changed. A missing, unreadable, malformed or empty file keeps the last good list (and sets
// last_error()): rewrite it atomically (write + rename) to change it.
class EndpointFile {
 public:
  explicit EndpointFile(std::string path);
  // Returns true when the endpoint list differs from the previous poll's.
  bool poll();
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const std::string& last_error() const { return last_error_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> endpoints_;
  std::string last_error_;
  int64_t mtime_ns_ = -1, size_ = -1;
  uint64_t inode_ = 0;
  std::string hash_;
};

// All sources together. refresh() re-reads the file (if changed) and re-resolves DNS names; the
// merged list keeps static endpoints first, then file, then DNS, without duplicates.
// Not thread-safe: the client calls it from its one maintenance thread.
class Discovery {
 public:
  explicit Discovery(DiscoveryOptions options);
  // Returns true when the merged list changed. Errors of one source (DNS failure, missing file)
  // keep that source's last good addresses and are reported by errors().
  bool refresh();
  const std::vector<std::string>& endpoints() const { return merged_; }
  const std::vector<std::string>& errors() const { return errors_; }
  const DiscoveryOptions& options() const { return options_; }

 private:
  DiscoveryOptions options_;
  std::vector<EndpointFile> files_;
  std::vector<std::vector<std::string>> dns_last_;
  std::vector<std::string> merged_;
  std::vector<std::string> errors_;
};

}  // namespace quiver::client
