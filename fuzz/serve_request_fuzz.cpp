// libFuzzer target: untrusted request bytes through the server's decoding and validation, the
// way the gRPC and HTTP front ends feed them. Any input must either decode into tensors that
// match the model, or throw quiver::Error; nothing may crash, hang or read out of bounds.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "quiver/gpu/shared_memory.hpp"
#include "serve/codec.hpp"

using namespace quiver;
using namespace quiver::serve;

namespace {
std::shared_ptr<ModelVersion> make_version(const char* cfg_text) {
  return identity_model_version(cfg_text);
}

const ModelVersion& batched() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 8
input [ { name: "F" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "S" data_type: TYPE_STRING dims: [ 2 ] },
        { name: "H" data_type: TYPE_FP16 dims: [ 1 ] } ]
output [ { name: "F_OUT" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "S_OUT" data_type: TYPE_STRING dims: [ 2 ] },
         { name: "H_OUT" data_type: TYPE_FP16 dims: [ 1 ] } ])");
  return *mv;
}

const ModelVersion& plain() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 0
input [ { name: "I" data_type: TYPE_INT64 dims: [ 2 ] }, { name: "B" data_type: TYPE_BOOL dims: [ -1 ] } ]
output [ { name: "I_OUT" data_type: TYPE_INT64 dims: [ 2 ] }, { name: "B_OUT" data_type: TYPE_BOOL dims: [ -1 ] } ])");
  return *mv;
}

// Variable-length BYTES and UINT8 inputs (no batching): shapes are bounded only by the request.
const ModelVersion& ragged() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 0
input [ { name: "V" data_type: TYPE_STRING dims: [ -1 ] }, { name: "U" data_type: TYPE_UINT8 dims: [ -1, -1 ] } ]
output [ { name: "V_OUT" data_type: TYPE_STRING dims: [ -1 ] }, { name: "U_OUT" data_type: TYPE_UINT8 dims: [ -1, -1 ] } ])");
  return *mv;
}

// Two registered system shared-memory regions over one 64-byte POSIX object: "r" (all of it) and
// "r2" (bytes 16..47), and a 64-byte CUDA region "c" (emulated device memory: the copy-in/copy-out
// path), so that shared_memory_* parameters reach the bounds checks and both access paths.
ShmManager& shm_manager() {
  static ShmManager* m = [] {
    static auto device = gpu::SharedDeviceMemory::allocate(0, 64, /*emulated=*/true);
    const std::string key = "/quiver-fuzz-serve-" + std::to_string(getpid());
    int fd = shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, 64) != 0) std::abort();
    close(fd);
    auto* mgr = new ShmManager(/*cuda_emulation=*/true);
    mgr->register_region("r", key, 0, 64);
    mgr->register_region("r2", key, 16, 32);
    mgr->register_cuda("c", device->handle(), 0, 64);
    shm_unlink(key.c_str());  // the regions keep their mappings; nothing is left in /dev/shm
    return mgr;
  }();
  return *m;
}

void exercise(const ModelVersion& mv, InferRequest& req, const std::vector<OutputTarget>& targets) {
  // Decoded inputs must satisfy the model; run the identity model and encode the results.
  std::vector<Tensor> outs = mv.model->run_once(req.inputs);
  inference::ModelInferResponse resp;
  encode_grpc_response(mv, targets, outs, resp);  // shared-memory targets write into "r" / "r2" / "c"
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ShmManager& shm = shm_manager();
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 in string fields is logged otherwise
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  // selector bit 0: batched / plain model, bit 1: gRPC / HTTP, bit 2: HTTP binary section,
  // bit 3: the ragged model instead.
  const ModelVersion& mv = (selector & 8) ? ragged() : (selector & 1) ? batched() : plain();
  try {
    if (selector & 2) {
      inference::ModelInferRequest msg;
      if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
      InferRequest req;
      std::vector<OutputTarget> targets;
      decode_grpc_request(msg, mv, shm, req, targets);
      exercise(mv, req, targets);
    } else {
      // HTTP: optional binary section; the header length comes from the next two bytes.
      int64_t header_len = -1;
      if ((selector & 4) && bytes.size() >= 2) {
        header_len = (static_cast<uint8_t>(bytes[0]) | static_cast<uint8_t>(bytes[1]) << 8);
        bytes.remove_prefix(2);
      }
      InferRequest req;
      HttpInferRequest info;
      decode_http_request(bytes, header_len, mv, shm, req, info);
      std::vector<Tensor> outs = mv.model->run_once(req.inputs);
      int64_t hl = 0;
      (void)encode_http_response(mv, info, outs, hl);
    }
  } catch (const Error&) {
  }
  return 0;
}
