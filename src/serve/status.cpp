#include "serve/status.hpp"

namespace quiver::serve {

int http_status(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument:
    case ErrorCode::Parse: return 400;
    case ErrorCode::NotFound: return 404;
    case ErrorCode::Unsupported: return 501;
    case ErrorCode::Unavailable: return 503;
    case ErrorCode::DeadlineExceeded: return 504;
    case ErrorCode::ResourceExhausted: return 429;
    case ErrorCode::Cancelled: return 499;
    case ErrorCode::Internal: return 500;
  }
  return 500;
}

int grpc_status_code(ErrorCode c) {
  // Numeric values of grpc::StatusCode (stable, part of the gRPC wire protocol).
  switch (c) {
    case ErrorCode::InvalidArgument:
    case ErrorCode::Parse: return 3;         // INVALID_ARGUMENT
    case ErrorCode::NotFound: return 5;      // NOT_FOUND
    case ErrorCode::Unsupported: return 12;  // UNIMPLEMENTED
    case ErrorCode::Unavailable: return 14;  // UNAVAILABLE
    case ErrorCode::DeadlineExceeded: return 4;
    case ErrorCode::ResourceExhausted: return 8;
    case ErrorCode::Cancelled: return 1;
    case ErrorCode::Internal: return 13;     // INTERNAL
  }
  return 13;
}

const char* fail_reason_name(FailReason r) {
  switch (r) {
    case FailReason::Rejected: return "REJECTED";
    case FailReason::Canceled: return "CANCELED";
    case FailReason::Backend: return "BACKEND";
    case FailReason::Other: return "OTHER";
  }
  return "OTHER";
}

}  // namespace quiver::serve
