// Shared by the server integration tests: a small repository of identity models, gRPC stubs with
// deadlines, request builders.
#pragma once
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "support/server_process.hpp"

namespace quiver::test {

// The shared server-process helper (tests/support/server_process.hpp): `quiver serve` on a
// repository with free loopback ports.
using ServerProcess = quiver::testing::QuiverServe;
using quiver::testing::make_temp_dir;
using quiver::testing::write_text;

inline constexpr const char* kIdent = R"(
name: "ident"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
instance_group [ { count: 2 kind: KIND_CPU } ]
)";
inline constexpr const char* kPair = R"(
backend: "identity"
max_batch_size: 0
input [ { name: "A" data_type: TYPE_INT32 dims: [ 2, 3 ] }, { name: "B" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "A_OUT" data_type: TYPE_INT32 dims: [ 2, 3 ] }, { name: "B_OUT" data_type: TYPE_STRING dims: [ -1 ] } ]
)";
inline constexpr const char* kSlow = R"(
backend: "identity"
max_batch_size: 16
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { }
parameters { key: "execute_delay_ms" value: { string_value: "40" } }
)";
inline constexpr const char* kVersioned = R"(
backend: "identity"
max_batch_size: 0
version_policy: { latest: { num_versions: 2 } }
input [ { name: "X" data_type: TYPE_INT64 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT64 dims: [ 1 ] } ]
)";

inline std::string make_repo() {
  std::string root = quiver::test::make_temp_dir("serve-repo");
  write_text(std::filesystem::path(root) / "ident/config.pbtxt", kIdent);
  std::filesystem::create_directories(std::filesystem::path(root) / "ident/1");
  write_text(std::filesystem::path(root) / "pair/config.pbtxt", kPair);
  std::filesystem::create_directories(std::filesystem::path(root) / "pair/1");
  write_text(std::filesystem::path(root) / "slow/config.pbtxt", kSlow);
  std::filesystem::create_directories(std::filesystem::path(root) / "slow/1");
  write_text(std::filesystem::path(root) / "versioned/config.pbtxt", kVersioned);
  for (const char* v : {"1", "2", "3"}) std::filesystem::create_directories(std::filesystem::path(root) / "versioned" / v);
  return root;
}

using Stub = inference::GRPCInferenceService::Stub;

inline std::unique_ptr<Stub> stub_for(const ServerProcess& s, int max_msg = 64 << 20) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(max_msg);
  args.SetMaxReceiveMessageSize(max_msg);
  auto ch = grpc::CreateCustomChannel(s.grpc_addr(), grpc::InsecureChannelCredentials(), args);
  return inference::GRPCInferenceService::NewStub(ch);
}

inline std::unique_ptr<grpc::ClientContext> ctx(int ms = 10000) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  return c;
}

inline inference::ModelInferRequest fp32_request(const std::string& model, const std::vector<float>& v, int64_t batch,
                                          int64_t width = 4) {
  inference::ModelInferRequest r;
  r.set_model_name(model);
  auto* in = r.add_inputs();
  in->set_name("INPUT0");
  in->set_datatype("FP32");
  in->add_shape(batch);
  in->add_shape(width);
  r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  return r;
}

inline std::vector<float> as_floats(const std::string& raw) {
  std::vector<float> v(raw.size() / sizeof(float));
  std::memcpy(v.data(), raw.data(), v.size() * sizeof(float));
  return v;
}

inline std::string bytes_elem(const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  std::string out(4, '\0');
  std::memcpy(out.data(), &n, 4);
  return out + s;
}

// Waits (bounded) until the server reports requests pending on `model` (queued or executing).
inline bool wait_pending(const ServerProcess& s, const std::string& model, int min_pending = 1) {
  httplib::Client cli("127.0.0.1", s.metrics_port);
  const std::string key = "nv_inference_pending_request_count{model=\"" + model + "\",version=\"1\"} ";
  for (int i = 0; i < 400; ++i) {
    auto r = cli.Get("/metrics");
    if (r && r->status == 200) {
      auto pos = r->body.find(key);
      if (pos != std::string::npos && std::stoi(r->body.substr(pos + key.size())) >= min_pending) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

inline void expect_error(Stub& stub, const inference::ModelInferRequest& r, grpc::StatusCode code, const std::string& needle) {
  inference::ModelInferResponse resp;
  auto st = stub.ModelInfer(ctx().get(), r, &resp);
  EXPECT_EQ(st.error_code(), code) << st.error_message();
  EXPECT_NE(st.error_message().find(needle), std::string::npos) << st.error_message();
}

}  // namespace quiver::test
