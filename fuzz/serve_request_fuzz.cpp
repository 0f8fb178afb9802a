// libFuzzer target: untrusted request bytes through the server's decoding and validation, the
// way the gRPC and HTTP front ends feed them. Any input must either decode into tensors that
// match the model, or throw quiver::Error; nothing may crash, hang or read out of bounds. And a
// request that validates round-trips the identity model: its outputs equal the decoded inputs, and
// the encoded response, read back the way a client reads it (raw contents through the client's
// decoder, the HTTP JSON header and binary section, shared-memory regions), carries the same
// dtype, shape and bytes. (JSON cannot carry NaN / infinities or bytes that are not UTF-8: such
// values are compared only through binary data and shared memory.)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <nlohmann/json.hpp>

#include "kserve/infer_messages.hpp"
#include "kserve/json_tensors.hpp"
#include "kserve/tensors.hpp"
#include "quiver/core/half.hpp"
#include "quiver/core/util.hpp"
#include "quiver/gpu/shared_memory.hpp"
#include "serve/codec.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"

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

[[noreturn]] void broken(const ModelVersion& mv, const std::string& tensor, const std::string& what) {
  std::fprintf(stderr, "serve fuzz invariant broken (model %s, tensor '%s'): %s\n", mv.name.c_str(), tensor.c_str(),
               what.c_str());
  std::abort();
}

std::string wire(const Tensor& t) {
  std::string w;
  kserve::assign_wire(t, w);
  return w;
}

// The identity model answers with its inputs: output k is input k (model order). The expected wire
// bytes are taken before encoding (an output written to shared memory may overwrite an input there).
std::vector<std::string> check_identity(const ModelVersion& mv, const InferRequest& req, const std::vector<Tensor>& outs) {
  if (outs.size() != req.inputs.size())
    broken(mv, "", std::to_string(outs.size()) + " outputs for " + std::to_string(req.inputs.size()) + " inputs");
  std::vector<std::string> expected;
  for (size_t k = 0; k < outs.size(); ++k) {
    const Tensor& in = req.inputs[k];
    if (outs[k].dtype() != in.dtype() || outs[k].dims() != in.dims())
      broken(mv, mv.outputs[k].name, "identity output's dtype or shape differs from its input");
    expected.push_back(wire(in));
    if (wire(outs[k]) != expected.back()) broken(mv, mv.outputs[k].name, "identity output's bytes differ from its input");
  }
  return expected;
}

// Encoding may still refuse with a typed error (an output larger than its shared-memory slot, a
// classification of BYTES); an Internal error is a finding.
template <class F>
bool encoded(const ModelVersion& mv, F&& encode) {
  try {
    encode();
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Internal) broken(mv, "", std::string("encoding the response: ") + e.what());
    return false;
  }
}

const IOSpec& spec_of(const ModelVersion& mv, const OutputTarget& tg) { return mv.outputs[tg.index]; }

// Physical byte range of a shared-memory target: "r" and "r2" are one object ("r2" starts at 16),
// "c" is another. Outputs whose ranges overlap overwrite each other, so only the others are checked.
struct Span {
  int object;
  uint64_t lo, hi;
};
Span physical(const OutputTarget& tg, uint64_t size) {
  const std::string& n = tg.shm->name();
  const int obj = n == "c" ? 1 : 0;
  const uint64_t base = n == "r2" ? 16 : 0;
  return {obj, base + tg.shm_offset, base + tg.shm_offset + size};
}
std::vector<bool> overlapping(const std::vector<OutputTarget>& targets, const std::vector<uint64_t>& sizes) {
  std::vector<bool> out(targets.size(), false);
  for (size_t a = 0; a < targets.size(); ++a)
    for (size_t b = a + 1; b < targets.size(); ++b) {
      if (!targets[a].shm || !targets[b].shm) continue;
      const Span x = physical(targets[a], sizes[a]), y = physical(targets[b], sizes[b]);
      if (x.object == y.object && x.lo < y.hi && y.lo < x.hi) out[a] = out[b] = true;
    }
  return out;
}

// Inputs read from system shared memory are views into it: an output written over them changes
// what later outputs (views of the same bytes) carry. Such requests are checked up to encoding only.
bool outputs_overwrite_inputs(const InferRequest& req, const std::vector<OutputTarget>& targets,
                              const std::vector<uint64_t>& sizes) {
  const auto* base = shm_manager().get("r")->host(0, 64, "");
  for (const Tensor& in : req.inputs) {
    const auto* p = static_cast<const uint8_t*>(in.raw());
    if (!p || p < base || p >= base + 64) continue;
    const uint64_t lo = static_cast<uint64_t>(p - base), hi = lo + in.nbytes();
    for (size_t j = 0; j < targets.size(); ++j) {
      if (!targets[j].shm) continue;
      const Span o = physical(targets[j], sizes[j]);
      if (o.object == 0 && o.lo < hi && lo < o.hi) return true;
    }
  }
  return false;
}

void check_shm(const ModelVersion& mv, const OutputTarget& tg, const std::string& expected) {
  std::string got(expected.size(), '\0');
  tg.shm->read(tg.shm_offset, got.data(), got.size(), spec_of(mv, tg).name);
  if (got != expected) broken(mv, spec_of(mv, tg).name, "shared-memory output differs from the input");
}

void check_header(const ModelVersion& mv, const OutputTarget& tg, const Tensor& expected, const std::string& datatype,
                  const std::vector<int64_t>& shape) {
  if (datatype != dtype_kserve_name(expected.dtype())) broken(mv, spec_of(mv, tg).name, "datatype " + datatype);
  if (shape != response_shape(expected)) broken(mv, spec_of(mv, tg).name, "shape differs from the input's");
}

void round_trip_grpc(const ModelVersion& mv, const InferRequest& req, const std::vector<OutputTarget>& targets,
                     const std::vector<Tensor>& outs) {
  const auto expected = check_identity(mv, req, outs);
  inference::ModelInferResponse resp;
  if (!encoded(mv, [&] { encode_grpc_response(mv, targets, outs, resp); })) return;  // writes "r" / "r2" / "c"
  if (resp.outputs_size() != static_cast<int>(targets.size()) || resp.raw_output_contents_size() != resp.outputs_size())
    broken(mv, "", "response has " + std::to_string(resp.outputs_size()) + " outputs for " + std::to_string(targets.size()) +
                       " requested");
  std::vector<uint64_t> sizes;
  for (const auto& tg : targets) sizes.push_back(expected[spec_of(mv, tg).model_index].size());
  if (outputs_overwrite_inputs(req, targets, sizes)) return;
  const auto overlap = overlapping(targets, sizes);
  for (size_t j = 0; j < targets.size(); ++j) {
    const OutputTarget& tg = targets[j];
    const IOSpec& s = spec_of(mv, tg);
    const auto& o = resp.outputs(static_cast<int>(j));
    if (o.name() != s.name) broken(mv, s.name, "response output " + std::to_string(j) + " is named '" + o.name() + "'");
    if (tg.class_count) continue;  // the classification extension transforms the values
    const Tensor& in = req.inputs[s.model_index];
    check_header(mv, tg, in, o.datatype(), std::vector<int64_t>(o.shape().begin(), o.shape().end()));
    if (tg.shm) {
      if (!overlap[j]) check_shm(mv, tg, expected[s.model_index]);
      continue;
    }
    // Read back by the client's decoder.
    auto one = std::make_shared<inference::ModelInferResponse>();
    *one->add_outputs() = o;
    *one->add_raw_output_contents() = resp.raw_output_contents(static_cast<int>(j));
    const auto back = kserve::decode_outputs(one);
    if (back.size() != 1 || wire(back[0].tensor) != expected[s.model_index] || back[0].tensor.dims() != in.dims())
      broken(mv, s.name, "the client's decoder reads back other values than were sent");
  }
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

// Values JSON can carry exactly (finite numbers, UTF-8 strings).
bool json_exact(const Tensor& t) {
  switch (t.dtype()) {
    case DType::F32:
      for (float v : t.span<float>())
        if (!std::isfinite(v)) return false;
      return true;
    case DType::F64:
      for (double v : t.span<double>())
        if (!std::isfinite(v)) return false;
      return true;
    case DType::F16:
      for (uint16_t h : t.span<uint16_t>())
        if (!std::isfinite(Half::to_float(h))) return false;
      return true;
    case DType::BF16:
      for (uint16_t h : t.span<uint16_t>())
        if (!std::isfinite(BFloat16::to_float(h))) return false;
      return true;
    case DType::String:
      for (const auto& v : t.span<std::string>())
        if (!valid_utf8(v)) return false;
      return true;
    default: return true;
  }
}

void round_trip_http(const ModelVersion& mv, const InferRequest& req, const HttpInferRequest& info,
                     const std::vector<Tensor>& outs) {
  const auto expected = check_identity(mv, req, outs);
  int64_t hl = 0;
  std::string body;
  if (!encoded(mv, [&] { body = encode_http_response(mv, info, outs, hl); })) return;
  if (hl > static_cast<int64_t>(body.size())) broken(mv, "", "JSON header length past the body");
  const nlohmann::json j = nlohmann::json::parse(hl < 0 ? body : body.substr(0, static_cast<size_t>(hl)));
  const auto& arr = j.at("outputs");
  if (arr.size() != info.outputs.size()) broken(mv, "", "response lists another number of outputs than requested");
  std::vector<uint64_t> sizes;
  for (const auto& tg : info.outputs) sizes.push_back(expected[spec_of(mv, tg).model_index].size());
  if (outputs_overwrite_inputs(req, info.outputs, sizes)) return;
  const auto overlap = overlapping(info.outputs, sizes);
  size_t pos = hl < 0 ? body.size() : static_cast<size_t>(hl);
  for (size_t k = 0; k < info.outputs.size(); ++k) {
    const OutputTarget& tg = info.outputs[k];
    const IOSpec& s = spec_of(mv, tg);
    const auto& o = arr[k];
    if (o.at("name") != s.name) broken(mv, s.name, "response output " + std::to_string(k) + " has another name");
    const auto params = o.value("parameters", nlohmann::json::object());
    if (tg.class_count) {  // values transformed; only its binary section is skipped
      if (params.contains("binary_data_size")) pos += params["binary_data_size"].get<size_t>();
      continue;
    }
    const Tensor& in = req.inputs[s.model_index];
    check_header(mv, tg, in, o.at("datatype").get<std::string>(), o.at("shape").get<std::vector<int64_t>>());
    const std::string& want = expected[s.model_index];
    if (tg.shm) {
      // As Triton: name, datatype and shape only (its C++ HTTP client reads any output
      // parameters as binary data).
      if (o.size() != 3 || o.contains("parameters")) broken(mv, s.name, "shared-memory output carries more than name, datatype, shape");
      if (!overlap[k]) check_shm(mv, tg, want);
    } else if (params.contains("binary_data_size")) {
      const auto n = params["binary_data_size"].get<size_t>();
      if (n != want.size() || pos + n > body.size() || body.compare(pos, n, want) != 0)
        broken(mv, s.name, "binary output differs from the input");
      pos += n;
    } else if (json_exact(in)) {
      const Tensor back = kserve::tensor_from_json(in.dtype(), in.dims(), o.at("data"), ErrorCode::Parse, {mv.name, "", s.name, "", -1}, "output");
      if (wire(back) != want) broken(mv, s.name, "JSON output differs from the input");
    }
  }
  if (pos != body.size()) broken(mv, "", "binary section has bytes no output accounts for");
}
// Accept-Encoding as Triton reads it: one of gzip / deflate / identity, and never a coding the
// header does not name.
void check_response_encoding(std::string_view header) {
  const std::string e = response_encoding(header);
  if (e.empty()) return;
  if (e != "gzip" && e != "deflate") std::abort();
  std::string lower(header);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find(e) == std::string::npos) std::abort();
}

const ModelVersion& vector_model() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ] output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ])");
  return *mv;
}

// Bytes as a scheduler script: options from the first two, then one request per byte (rows 1-5:
// 5 exceeds max_batch_size; an odd row count of 3 with bit 3 carries a bad width; bit 4 asks for
// a queue timeout of 1 us). Checks the statistics invariant perf_analyzer relies on
// (stats_inconsistency) from inside every completion and at the end.
void run_scheduler_script(std::string_view bytes) {
  if (bytes.size() < 2) return;
  const auto a = static_cast<uint8_t>(bytes[0]), b = static_cast<uint8_t>(bytes[1]);
  bytes.remove_prefix(2);
  if (bytes.size() > 64) bytes = bytes.substr(0, 64);
  SchedulerOptions o;
  o.instances = 1 + (a & 1);
  o.max_batch = 4;
  o.dynamic_batching = a & 2;
  o.preserve_ordering = a & 4;
  o.max_queue_delay_us = (a & 8) ? 100 : 0;
  o.default_policy.max_queue_size = b & 3;
  o.default_policy.delay_on_timeout = b & 4;
  o.default_policy.allow_timeout_override = true;
  std::atomic<bool> bad{false};
  {
    Scheduler s(vector_model().model, o, "fuzz");
    for (char c : bytes) {
      const auto v = static_cast<uint8_t>(c);
      const int64_t rows = 1 + (v & 7) % 5;
      const int64_t width = (v & 8) && rows == 3 ? 3 : 2;
      auto r = std::make_unique<InferRequest>();
      r->inputs.push_back(Tensor::from_vector(std::vector<float>(static_cast<size_t>(rows * width), 1.f), {rows, width}));
      r->batch = rows;
      r->timeout_us = (v & 16) ? 1 : 0;
      r->arrival_ns = now_ns();
      r->complete = [&s, &bad](const Status&, FailReason, std::span<const Tensor>) {
        if (!stats_inconsistency(s.stats()).empty()) bad = true;
      };
      s.enqueue(std::move(r));
    }
    s.drain();
    if (!stats_inconsistency(s.stats()).empty()) bad = true;
  }
  if (bad) std::abort();
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
  // bit 3: the ragged model instead; bit 4: the bytes are an Accept-Encoding header; bit 5: a
  // scheduler script (statistics).
  if (selector & 16) {
    check_response_encoding(bytes);
    return 0;
  }
  if (selector & 32) {
    run_scheduler_script(bytes);
    return 0;
  }
  const ModelVersion& mv = (selector & 8) ? ragged() : (selector & 1) ? batched() : plain();
  // Only decoding may reject the bytes; what follows a successful decode must hold (a quiver::Error
  // from it escapes and is a finding, like any other exception).
  if (selector & 2) {
    inference::ModelInferRequest msg;
    if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
    InferRequest req;
    std::vector<OutputTarget> targets;
    try {
      decode_grpc_request(msg, mv, shm, req, targets);
    } catch (const Error&) {
      return 0;
    }
    round_trip_grpc(mv, req, targets, mv.model->run_once(req.inputs));
  } else {
    // HTTP: optional binary section; the header length comes from the next two bytes.
    int64_t header_len = -1;
    if ((selector & 4) && bytes.size() >= 2) {
      header_len = (static_cast<uint8_t>(bytes[0]) | static_cast<uint8_t>(bytes[1]) << 8);
      bytes.remove_prefix(2);
    }
    InferRequest req;
    HttpInferRequest info;
    try {
      decode_http_request(bytes, header_len, mv, shm, req, info);
    } catch (const Error&) {
      return 0;
    }
    round_trip_http(mv, req, info, mv.model->run_once(req.inputs));
  }
  return 0;
}
