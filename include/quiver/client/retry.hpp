// Retry policy of the inference client: the same server up to N times for transient errors, then
// other servers, never past the request's deadline. Requests keep their id across attempts, and
// inference is a pure function of the inputs, so a retried request is idempotent.
#pragma once
#include <cstdint>

#include "quiver/core/error.hpp"

namespace quiver::client {

struct RetryPolicy {
  int attempts_per_server = 2;     // tries on one server for a transient error (>= 1)
  int max_servers = 3;             // distinct servers one request may try (>= 1)
  int64_t backoff_ns = 1'000'000;  // wait before retrying on the same server; doubles per retry
  int64_t max_backoff_ns = 50'000'000;
};

enum class RetryAction {
  Fail,         // give up: the error goes to the caller (or to the fallback)
  SameServer,   // retry on the same server after backoff_for()
  OtherServer,  // retry at once on another server
};

// What went wrong in one attempt, as the client classifies a gRPC status.
enum class AttemptError {
  Transport,         // connection refused/reset, server gone (UNAVAILABLE, or an aborted stream)
  Overloaded,        // the server's queue policy rejected it (RESOURCE_EXHAUSTED)
  ModelNotFound,     // this server does not serve the model/version (NOT_FOUND)
  DeadlineExceeded,  // the request's own deadline passed: never retried
  Caller,            // the request is bad (INVALID_ARGUMENT, ...): never retried, same everywhere
  Cancelled,
  Internal,          // server-side failure (INTERNAL/UNKNOWN): retried on another server
};

ErrorCode attempt_error_code(AttemptError e);

// Decides the next step after a failed attempt. `attempts_on_server` counts attempts already made
// on the current server (>= 1), `servers_tried` distinct servers used so far (>= 1),
// `server_still_serving` whether the current server's breaker is still closed.
RetryAction decide_retry(const RetryPolicy& p, AttemptError e, int attempts_on_server, int servers_tried,
                         bool server_still_serving);

// Backoff before the k-th retry on the same server (k >= 1): backoff_ns * 2^(k-1), capped.
int64_t backoff_for(const RetryPolicy& p, int k);

}  // namespace quiver::client
