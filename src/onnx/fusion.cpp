#include "onnx/fusion.hpp"

#include <onnx/onnx_pb.h>

namespace quiver::onnx {

FusedGraph fuse_graph(const ::onnx::GraphProto& g, bool enabled, const ConstLookup& lookup_const) {
  FusedGraph out;
  for (const auto& n : g.node()) out.nodes.push_back(&n);
  (void)enabled;
  (void)lookup_const;
  return out;
}

}  // namespace quiver::onnx
