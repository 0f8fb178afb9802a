// One error type for every part of Quiver: a code (maps to gRPC / HTTP status) plus where it happened.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace quiver {

enum class ErrorCode {
  InvalidArgument,   // bad input from the caller: wrong name, dtype, shape, malformed request
  NotFound,          // unknown model, version, tensor, file
  Unsupported,       // valid but not implemented (unknown op, unsupported dtype)
  Parse,             // malformed file: truncated, corrupt, schema violation
  Unavailable,       // server down, no healthy endpoint, model not ready
  DeadlineExceeded,
  ResourceExhausted, // queue full, message too large
  Cancelled,
  Internal,
};
std::string_view error_code_name(ErrorCode c);

// Where an error happened. Empty fields are not printed.
struct ErrorWhere {
  std::string model;   // model name or file
  std::string node;    // graph node name (and op type), tree index, component name ...
  std::string tensor;  // tensor / input / output name
  std::string file;    // file being parsed
  int64_t offset = -1; // byte offset, line or record number in `file`
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, ErrorWhere where = {});
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const ErrorWhere& where() const noexcept { return where_; }
  // Returns a copy with empty location fields filled from `outer` (used when an error bubbles up).
  Error with_context(const ErrorWhere& outer) const;

 private:
  ErrorCode code_;
  std::string message_;
  ErrorWhere where_;
};

std::string format_error(ErrorCode code, const std::string& message, const ErrorWhere& where);
// "model 'm', file 'f', offset N, node 'n', tensor 't'" (the fields that are set).
std::string format_where(const ErrorWhere& where);
// "MESSAGE (CODE; WHERE)": the message first, for protocols whose clients match on how an error
// text starts (Triton's: "Request for unknown model: ...", "failed to load '...'").
std::string format_error_message_first(ErrorCode code, const std::string& message, const ErrorWhere& where);

[[noreturn]] void throw_error(ErrorCode code, std::string message, ErrorWhere where = {});

}  // namespace quiver
