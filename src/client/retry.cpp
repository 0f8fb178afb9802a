#include "quiver/client/retry.hpp"

#include <algorithm>

namespace quiver::client {

ErrorCode attempt_error_code(AttemptError e) {
  switch (e) {
    case AttemptError::Transport: return ErrorCode::Unavailable;
    case AttemptError::Overloaded: return ErrorCode::ResourceExhausted;
    case AttemptError::ModelNotFound: return ErrorCode::NotFound;
    case AttemptError::DeadlineExceeded: return ErrorCode::DeadlineExceeded;
    case AttemptError::Caller: return ErrorCode::InvalidArgument;
    case AttemptError::Cancelled: return ErrorCode::Cancelled;
    case AttemptError::Internal: return ErrorCode::Internal;
  }
  return ErrorCode::Internal;
}

RetryAction decide_retry(const RetryPolicy& p, AttemptError e, int attempts_on_server, int servers_tried,
                         bool server_still_serving) {
  const bool other_left = servers_tried < std::max(1, p.max_servers);
  switch (e) {
    case AttemptError::DeadlineExceeded:
    case AttemptError::Caller:
    case AttemptError::Cancelled:
      return RetryAction::Fail;
    case AttemptError::Transport:
      if (server_still_serving && attempts_on_server < std::max(1, p.attempts_per_server))
        return RetryAction::SameServer;
      return other_left ? RetryAction::OtherServer : RetryAction::Fail;
    case AttemptError::Overloaded:     // a full queue will not drain for us: go elsewhere
    case AttemptError::ModelNotFound:  // another server may serve it
    case AttemptError::Internal:
      return other_left ? RetryAction::OtherServer : RetryAction::Fail;
  }
  return RetryAction::Fail;
}

int64_t backoff_for(const RetryPolicy& p, int k) {
  int64_t b = p.backoff_ns;
  for (int i = 1; i < k && b < p.max_backoff_ns; ++i) b *= 2;
  return std::min(b, p.max_backoff_ns);
}

}  // namespace quiver::client
