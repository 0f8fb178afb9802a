// Request options, results and provenance of the inference client, the batching client and the
// remote Model backend: the core inference-call layer's types (quiver/core/infer.hpp), named here
// for client code.
#pragma once
#include "quiver/core/infer.hpp"

namespace quiver::client {

using quiver::AsyncInferer;
using quiver::AsyncInferFn;
using quiver::FallbackMode;
using quiver::InferCallback;
using quiver::InferOptions;
using quiver::InferResult;
using quiver::Provenance;
using quiver::fallback_mode_from_string;

}  // namespace quiver::client
