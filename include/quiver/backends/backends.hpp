// Registers every backend compiled into this build (ONNX engine, tree ensembles) with the core
// registry, so quiver::load_model() can open any supported file. Idempotent, thread-safe.
#pragma once

namespace quiver {
void register_builtin_backends();
}
