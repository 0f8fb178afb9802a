// Result of a server operation, convertible to gRPC / HTTP status codes the way Triton maps them.
#pragma once
#include <string>

#include "quiver/core/error.hpp"

namespace quiver::serve {

struct Status {
  bool ok = true;
  ErrorCode code = ErrorCode::Internal;
  std::string message;

  static Status success() { return {}; }
  static Status error(ErrorCode c, std::string msg) { return {false, c, std::move(msg)}; }
  // On the wire the message comes first, Quiver's code and location after it: Triton's clients
  // match how an error text starts ("Request for unknown model", "failed to load").
  static Status from(const Error& e) {
    return {false, e.code(), format_error_message_first(e.code(), e.message(), e.where())};
  }
};

// Triton mapping: NotFound->404/NOT_FOUND, InvalidArgument/Parse->400/INVALID_ARGUMENT,
// Unavailable->503/UNAVAILABLE, Unsupported->501/UNIMPLEMENTED, Internal->500/INTERNAL.
int http_status(ErrorCode c);
int grpc_status_code(ErrorCode c);  // grpc::StatusCode value

// Why a request failed, for nv_inference_request_failure{reason=...}.
enum class FailReason { Rejected, Canceled, Backend, Other };
const char* fail_reason_name(FailReason r);

}  // namespace quiver::serve
