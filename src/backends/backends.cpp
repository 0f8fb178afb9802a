#include "quiver/backends/backends.hpp"

#include <mutex>

#ifdef QUIVER_HAVE_ONNX
#include "quiver/onnx/onnx_model.hpp"
#endif
#ifdef QUIVER_HAVE_FOREST
#include "quiver/forest/forest.hpp"
#endif

namespace quiver {

void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QUIVER_HAVE_ONNX
    onnx::register_backend();
#endif
#ifdef QUIVER_HAVE_FOREST
    forest::register_backend();
#endif
  });
}

}  // namespace quiver
