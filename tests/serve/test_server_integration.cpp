// Integration tests: the real `quiver serve` binary on free loopback ports, driven over gRPC (the
// KServe v2 stubs) and HTTP, including bad input, shared memory, repository control and SIGTERM.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "grpc_service.grpc.pb.h"
#include "health.grpc.pb.h"
#include "quiver/core/util.hpp"
#include "quiver/forest/csv.hpp"
#include "serve/serve_fixtures.hpp"
#ifdef QUIVER_TEST_ONNX
#include "onnx/reference_sets.hpp"
#endif

namespace fs = std::filesystem;
using quiver::test::ServerProcess;
using quiver::test::write_text;
using namespace quiver::test;
using nlohmann::json;

namespace {

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(make_repo());
    server_ = new ServerProcess(*repo_, {"--max-message-size", "1048576"});
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*repo_);
    delete repo_;
  }
  static std::string* repo_;
  static ServerProcess* server_;
};
std::string* ServeTest::repo_ = nullptr;
ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, ReadyLineNamesLoopbackPorts) {
  EXPECT_GT(server_->grpc_port, 0);
  EXPECT_GT(server_->http_port, 0);
  EXPECT_GT(server_->metrics_port, 0);
  EXPECT_NE(server_->ready_line.find("grpc=127.0.0.1:"), std::string::npos);
}

TEST_F(ServeTest, HealthAndMetadata) {
  auto stub = stub_for(*server_);
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub->ServerLive(ctx().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub->ServerReady(ctx().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(stub->ServerMetadata(ctx().get(), {}, &meta).ok());
  std::vector<std::string> ext(meta.extensions().begin(), meta.extensions().end());
  EXPECT_NE(std::find(ext.begin(), ext.end(), "statistics"), ext.end());
  EXPECT_NE(std::find(ext.begin(), ext.end(), "system_shared_memory"), ext.end());

  inference::ModelMetadataRequest mr;
  mr.set_name("ident");
  inference::ModelMetadataResponse mm;
  ASSERT_TRUE(stub->ModelMetadata(ctx().get(), mr, &mm).ok());
  ASSERT_EQ(mm.inputs_size(), 1);
  EXPECT_EQ(mm.inputs(0).datatype(), "FP32");
  ASSERT_EQ(mm.inputs(0).shape_size(), 2);
  EXPECT_EQ(mm.inputs(0).shape(0), -1);
  EXPECT_EQ(mm.inputs(0).shape(1), 4);

  inference::ModelConfigRequest cr;
  cr.set_name("ident");
  inference::ModelConfigResponse cfg;
  ASSERT_TRUE(stub->ModelConfig(ctx().get(), cr, &cfg).ok());
  EXPECT_EQ(cfg.config().max_batch_size(), 8);
  EXPECT_EQ(cfg.config().instance_group(0).count(), 2);
  EXPECT_EQ(cfg.config().parameters().at("quiver.sha256").string_value().size(), 64u);

  grpc::ChannelArguments a;
  auto hs = grpc::health::v1::Health::NewStub(grpc::CreateChannel(server_->grpc_addr(), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckResponse hr;
  ASSERT_TRUE(hs->Check(ctx().get(), {}, &hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServeTest, IdentityInferRawAndTyped) {
  auto stub = stub_for(*server_);
  std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8.5f};
  auto req = fp32_request("ident", v, 2);
  req.set_id("req-7");
  (*req.mutable_parameters())["priority"].set_uint64_param(1);
  (*req.mutable_parameters())["timeout"].set_int64_param(5000000);
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.id(), "req-7");
  EXPECT_EQ(resp.model_version(), "1");
  ASSERT_EQ(resp.outputs_size(), 1);
  ASSERT_EQ(resp.raw_output_contents_size(), 1);
  EXPECT_EQ(resp.outputs(0).name(), "OUTPUT0");
  EXPECT_EQ(resp.outputs(0).shape(0), 2);
  EXPECT_EQ(as_floats(resp.raw_output_contents(0)), v);

  // Typed contents instead of raw bytes.
  inference::ModelInferRequest t;
  t.set_model_name("ident");
  auto* in = t.add_inputs();
  in->set_name("INPUT0");
  in->set_datatype("FP32");
  in->add_shape(1);
  in->add_shape(4);
  for (float x : {9.f, 8.f, 7.f, 6.f}) in->mutable_contents()->add_fp32_contents(x);
  inference::ModelInferResponse r2;
  ASSERT_TRUE(stub->ModelInfer(ctx().get(), t, &r2).ok());
  EXPECT_EQ(as_floats(r2.raw_output_contents(0)), (std::vector<float>{9, 8, 7, 6}));
}

TEST_F(ServeTest, MultiInputBytesAndOutputSelection) {
  auto stub = stub_for(*server_);
  inference::ModelInferRequest r;
  r.set_model_name("pair");
  auto* a = r.add_inputs();
  a->set_name("A");
  a->set_datatype("INT32");
  a->add_shape(2);
  a->add_shape(3);
  auto* b = r.add_inputs();
  b->set_name("B");
  b->set_datatype("BYTES");
  b->add_shape(3);
  std::vector<int32_t> av = {1, -2, 3, -4, 5, -6};
  r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(av.data()), av.size() * 4));
  std::string bytes = bytes_elem("jet") + bytes_elem("") + bytes_elem(std::string("\0x\xff", 3));
  r.add_raw_input_contents(bytes);
  r.add_outputs()->set_name("B_OUT");
  r.add_outputs()->set_name("A_OUT");
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), r, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.outputs_size(), 2);
  ASSERT_EQ(resp.raw_output_contents_size(), 2);
  EXPECT_EQ(resp.outputs(0).name(), "B_OUT");
  EXPECT_EQ(resp.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(resp.raw_output_contents(0), bytes);
  EXPECT_EQ(resp.outputs(1).name(), "A_OUT");
  EXPECT_EQ(resp.raw_output_contents(1), r.raw_input_contents(0));

  // Empty BYTES tensor: still exactly one raw_output_contents entry per output.
  r.mutable_inputs(1)->set_shape(0, 0);
  r.set_raw_input_contents(1, "");
  inference::ModelInferResponse empty;
  st = stub->ModelInfer(ctx().get(), r, &empty);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(empty.raw_output_contents_size(), 2);
  EXPECT_EQ(empty.raw_output_contents(0), "");
}


TEST_F(ServeTest, BadInputsGetTheRightStatusNamingTheTensor) {
  auto stub = stub_for(*server_);
  std::vector<float> v(4, 1.f);
  auto good = fp32_request("ident", v, 1);

  auto r = good;
  r.mutable_inputs(0)->set_datatype("FP64");
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  r = good;
  r.mutable_inputs(0)->set_shape(1, 5);
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  r = good;
  r.set_raw_input_contents(0, std::string(15, 'x'));
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  r = good;
  r.mutable_inputs(0)->set_shape(0, 9);  // > max_batch_size 8
  r.set_raw_input_contents(0, std::string(9 * 16, '\0'));
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  r = good;
  r.mutable_inputs(0)->set_name("NOPE");
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "NOPE");
  r = good;
  *r.add_inputs() = r.inputs(0);
  r.mutable_inputs(1)->set_name("EXTRA");
  r.add_raw_input_contents(r.raw_input_contents(0));
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "EXTRA");
  r = good;
  r.add_outputs()->set_name("NO_SUCH_OUTPUT");
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "NO_SUCH_OUTPUT");
  r = good;
  r.set_model_name("missing_model");
  expect_error(*stub, r, grpc::StatusCode::NOT_FOUND, "missing_model");
  r = good;
  r.set_model_version("7");
  expect_error(*stub, r, grpc::StatusCode::NOT_FOUND, "ident");
  r = good;
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);  // both raw and typed
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");

  // Missing input of a two-input model; truncated BYTES element.
  inference::ModelInferRequest p;
  p.set_model_name("pair");
  auto* a = p.add_inputs();
  a->set_name("A");
  a->set_datatype("INT32");
  a->add_shape(2);
  a->add_shape(3);
  p.add_raw_input_contents(std::string(24, '\0'));
  expect_error(*stub, p, grpc::StatusCode::INVALID_ARGUMENT, "'B'");
  auto* b = p.add_inputs();
  b->set_name("B");
  b->set_datatype("BYTES");
  b->add_shape(1);
  p.add_raw_input_contents(std::string("\x10\0\0\0ab", 6));
  expect_error(*stub, p, grpc::StatusCode::INVALID_ARGUMENT, "B");

  // The server still serves correct requests.
  inference::ModelInferResponse ok;
  EXPECT_TRUE(stub->ModelInfer(ctx().get(), good, &ok).ok());
}

TEST_F(ServeTest, OversizedMessageRejectedServerKeepsServing) {
  auto stub = stub_for(*server_);
  std::vector<float> big(8 * 40000, 0.f);  // 1.28 MB > --max-message-size 1 MiB
  auto r = fp32_request("ident", big, 8, 40000);
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), r, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  std::vector<float> v(4, 2.f);
  EXPECT_TRUE(stub->ModelInfer(ctx().get(), fp32_request("ident", v, 1), &resp).ok());
}

void send_garbage(int port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  (void)!write(fd, bytes.data(), bytes.size());
  timeval tv{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  (void)!read(fd, buf, sizeof buf);
  close(fd);
}

TEST_F(ServeTest, GarbageBytesOnTheSocketDoNotHurtOthers) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 7919) & 0xff);
  send_garbage(server_->grpc_port, junk);
  send_garbage(server_->grpc_port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + junk);  // valid preface, junk frames
  send_garbage(server_->http_port, junk);
  send_garbage(server_->http_port, "POST /v2/models/ident/infer HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
  auto stub = stub_for(*server_);
  std::vector<float> v(4, 3.f);
  inference::ModelInferResponse resp;
  EXPECT_TRUE(stub->ModelInfer(ctx().get(), fp32_request("ident", v, 1), &resp).ok());
  httplib::Client cli(server_->http_host(), server_->http_port);
  auto res = cli.Get("/v2/health/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(ServeTest, RepositoryControlRefusedInNoneModeAndCudaShmNeedsAGpu) {
  auto stub = stub_for(*server_);
  inference::RepositoryModelLoadRequest lr;
  lr.set_model_name("ident");
  inference::RepositoryModelLoadResponse lresp;
  EXPECT_EQ(stub->RepositoryModelLoad(ctx().get(), lr, &lresp).error_code(), grpc::StatusCode::UNAVAILABLE);
  inference::RepositoryModelUnloadRequest ur;
  ur.set_model_name("ident");
  inference::RepositoryModelUnloadResponse uresp;
  EXPECT_EQ(stub->RepositoryModelUnload(ctx().get(), ur, &uresp).error_code(), grpc::StatusCode::UNAVAILABLE);
  // CUDA shared memory: UNIMPLEMENTED where the server has no CUDA device (and the extension is not
  // listed); with one, a handle that opens nothing is a bad argument.
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(stub->ServerMetadata(ctx().get(), {}, &meta).ok());
  const bool cuda = std::count(meta.extensions().begin(), meta.extensions().end(), "cuda_shared_memory") > 0;
  inference::CudaSharedMemoryRegisterRequest cr;
  cr.set_name("c0");
  cr.set_raw_handle(std::string(64, '\x01'));
  cr.set_byte_size(64);
  inference::CudaSharedMemoryRegisterResponse cresp;
  auto cst = stub->CudaSharedMemoryRegister(ctx().get(), cr, &cresp);
  EXPECT_EQ(cst.error_code(), cuda ? grpc::StatusCode::INVALID_ARGUMENT : grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(cst.error_message().find("'c0'"), std::string::npos) << cst.error_message();
  inference::CudaSharedMemoryStatusResponse cstatus;
  ASSERT_TRUE(stub->CudaSharedMemoryStatus(ctx().get(), {}, &cstatus).ok());
  EXPECT_TRUE(cstatus.regions().empty());
  httplib::Client cli(server_->http_host(), server_->http_port);
  json reg = {{"raw_handle", {{"b64", std::string(86, 'A') + "=="}}}, {"device_id", 0}, {"byte_size", 64}};  // 64 zero bytes
  auto hr = cli.Post("/v2/cudasharedmemory/region/c0/register", reg.dump(), "application/json");
  ASSERT_TRUE(hr);
  EXPECT_EQ(hr->status, cuda ? 400 : 501) << hr->body;
  // An emulated handle is refused by a server that does not emulate, whatever its devices.
  cr.set_raw_handle(std::string("QVEMUSHM/quiver_x") + std::string(47, '\0'));
  cst = stub->CudaSharedMemoryRegister(ctx().get(), cr, &cresp);
  EXPECT_EQ(cst.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(cst.error_message().find("--cuda-shm-emulation"), std::string::npos) << cst.error_message();
  inference::RepositoryIndexRequest ir;
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(stub->RepositoryIndex(ctx().get(), ir, &index).ok());
  int ready = 0;
  for (const auto& m : index.models()) ready += m.state() == "READY";
  EXPECT_GE(ready, 4);
}

TEST_F(ServeTest, VersionPolicyLatestTwo) {
  auto stub = stub_for(*server_);
  inference::ModelMetadataRequest mr;
  mr.set_name("versioned");
  inference::ModelMetadataResponse mm;
  ASSERT_TRUE(stub->ModelMetadata(ctx().get(), mr, &mm).ok());
  ASSERT_EQ(mm.versions_size(), 2);
  EXPECT_EQ(mm.versions(0), "2");
  EXPECT_EQ(mm.versions(1), "3");
  inference::ModelInferRequest r;
  r.set_model_name("versioned");
  auto* in = r.add_inputs();
  in->set_name("X");
  in->set_datatype("INT64");
  in->add_shape(1);
  int64_t x = 42;
  r.add_raw_input_contents(std::string(reinterpret_cast<char*>(&x), 8));
  inference::ModelInferResponse resp;
  ASSERT_TRUE(stub->ModelInfer(ctx().get(), r, &resp).ok());
  EXPECT_EQ(resp.model_version(), "3");
  r.set_model_version("2");
  ASSERT_TRUE(stub->ModelInfer(ctx().get(), r, &resp).ok());
  r.set_model_version("1");
  EXPECT_EQ(stub->ModelInfer(ctx().get(), r, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServeTest, StreamInferAnswersEveryRequestIncludingErrors) {
  auto stub = stub_for(*server_);
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ModelStreamInfer(&c);
  std::vector<float> v = {1, 2, 3, 4};
  for (int i = 0; i < 3; ++i) {
    auto r = fp32_request(i == 1 ? "missing_model" : "ident", v, 1);
    r.set_id("s" + std::to_string(i));
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  int ok = 0, err = 0;
  inference::ModelStreamInferResponse resp;
  while (stream->Read(&resp)) {
    if (resp.error_message().empty()) {
      ++ok;
      EXPECT_EQ(as_floats(resp.infer_response().raw_output_contents(0)), v);
    } else {
      ++err;
      EXPECT_EQ(resp.infer_response().id(), "s1");
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(err, 1);
}

TEST_F(ServeTest, SystemSharedMemoryInputOutputAndBoundsChecks) {
  auto stub = stub_for(*server_);
  std::string key = "/quiver_test_" + std::to_string(getpid());
  int fd = shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64), 0);
  void* p = mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  float* f = static_cast<float*>(p);
  for (int i = 0; i < 4; ++i) f[i] = 10.f + i;

  inference::SystemSharedMemoryRegisterRequest reg;
  reg.set_name("region0");
  reg.set_key(key);
  reg.set_byte_size(64);
  inference::SystemSharedMemoryRegisterResponse rr;
  ASSERT_TRUE(stub->SystemSharedMemoryRegister(ctx().get(), reg, &rr).ok());
  inference::SystemSharedMemoryStatusResponse status;
  ASSERT_TRUE(stub->SystemSharedMemoryStatus(ctx().get(), {}, &status).ok());
  EXPECT_EQ(status.regions().at("region0").byte_size(), 64u);

  inference::ModelInferRequest r;
  r.set_model_name("ident");
  auto* in = r.add_inputs();
  in->set_name("INPUT0");
  in->set_datatype("FP32");
  in->add_shape(1);
  in->add_shape(4);
  (*in->mutable_parameters())["shared_memory_region"].set_string_param("region0");
  (*in->mutable_parameters())["shared_memory_byte_size"].set_int64_param(16);
  auto* out = r.add_outputs();
  out->set_name("OUTPUT0");
  (*out->mutable_parameters())["shared_memory_region"].set_string_param("region0");
  (*out->mutable_parameters())["shared_memory_byte_size"].set_int64_param(16);
  (*out->mutable_parameters())["shared_memory_offset"].set_int64_param(32);
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), r, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.raw_output_contents_size(), 1);
  EXPECT_TRUE(resp.raw_output_contents(0).empty());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f[8 + i], 10.f + i);

  // offset + size beyond the region: rejected, naming the tensor.
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_offset"].set_int64_param(56);
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_offset"].set_uint64_param(~0ull - 4);
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_offset"].set_int64_param(0);
  (*r.mutable_outputs(0)->mutable_parameters())["shared_memory_offset"].set_int64_param(60);
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "OUTPUT0");
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param("nope");
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "nope");

  inference::SystemSharedMemoryUnregisterRequest ur;
  ur.set_name("region0");
  inference::SystemSharedMemoryUnregisterResponse uresp;
  EXPECT_TRUE(stub->SystemSharedMemoryUnregister(ctx().get(), ur, &uresp).ok());
  EXPECT_EQ(stub->SystemSharedMemoryUnregister(ctx().get(), ur, &uresp).error_code(), grpc::StatusCode::NOT_FOUND);
  munmap(p, 64);
  close(fd);
  shm_unlink(key.c_str());
}

TEST_F(ServeTest, DynamicBatchingMergesConcurrentRequestsAndStatsCount) {
  auto stub = stub_for(*server_);
  inference::ModelStatisticsRequest sr;
  sr.set_name("slow");
  inference::ModelStatisticsResponse before;
  ASSERT_TRUE(stub->ModelStatistics(ctx().get(), sr, &before).ok());
  const int n = 12;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      inference::ModelInferRequest r = fp32_request("slow", {float(i)}, 1, 1);
      inference::ModelInferResponse resp;
      auto st = stub->ModelInfer(ctx().get(), r, &resp);
      if (st.ok() && as_floats(resp.raw_output_contents(0)) == std::vector<float>{float(i)}) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), n);
  inference::ModelStatisticsResponse after;
  ASSERT_TRUE(stub->ModelStatistics(ctx().get(), sr, &after).ok());
  ASSERT_EQ(after.model_stats_size(), 1);
  const auto& a = after.model_stats(0);
  const auto& b = before.model_stats(0);
  EXPECT_EQ(a.inference_count() - b.inference_count(), static_cast<uint64_t>(n));
  EXPECT_EQ(a.inference_stats().success().count() - b.inference_stats().success().count(), static_cast<uint64_t>(n));
  // One instance with a 40 ms execution: the requests queued behind the first run together.
  EXPECT_LT(a.execution_count() - b.execution_count(), static_cast<uint64_t>(n));
  EXPECT_GT(a.inference_stats().compute_infer().ns(), 0u);
  bool multi = false;
  for (const auto& bs : a.batch_stats()) multi |= bs.batch_size() > 1;
  EXPECT_TRUE(multi);
}

// Many jobs keep one HTTP connection each open for their whole run: every one must be served, not
// only as many as the server has threads (each request waits for all clients' previous one, so a
// starved connection stalls everyone and the test fails by its deadline instead of hanging).
TEST_F(ServeTest, ManyKeepAliveHttpClientsAreAllServed) {
  constexpr int kClients = 40, kRounds = 3;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, round = 0;
  std::atomic<int> ok{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  const std::string body = R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})";
  std::vector<std::thread> th;
  for (int c = 0; c < kClients; ++c)
    th.emplace_back([&] {
      httplib::Client cli(server_->http_host(), server_->http_port);
      cli.set_keep_alive(true);
      cli.set_read_timeout(20, 0);
      for (int r = 0; r < kRounds; ++r) {
        auto res = cli.Post("/v2/models/ident/infer", body, "application/json");
        if (res && res->status == 200) ++ok;
        std::unique_lock lk(mu);
        if (++arrived == kClients) {
          arrived = 0;
          ++round;
          cv.notify_all();
        } else if (!cv.wait_until(lk, deadline, [&, mine = round] { return round != mine; })) {
          return;  // the others never came: a connection was not served
        }
      }
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(ok.load(), kClients * kRounds);
}

TEST_F(ServeTest, HttpJsonBinaryGzipAndErrors) {
  httplib::Client cli(server_->http_host(), server_->http_port);
  cli.set_read_timeout(10, 0);
  auto r = cli.Get("/v2/health/live");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = cli.Get("/v2/models/ident");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["parameters"]["sha256"].get<std::string>().size(), 64u);

  json req = {{"id", "h1"},
              {"inputs", {{{"name", "INPUT0"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {{1, 2, 3, 4}}}}}}};
  r = cli.Post("/v2/models/ident/infer", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json out = json::parse(r->body);
  EXPECT_EQ(out["id"], "h1");
  EXPECT_EQ(out["outputs"][0]["data"], json({1.0, 2.0, 3.0, 4.0}));

  // Binary tensor data extension, both ways.
  json head = {{"inputs", {{{"name", "INPUT0"}, {"shape", {1, 4}}, {"datatype", "FP32"},
                            {"parameters", {{"binary_data_size", 16}}}}}},
               {"outputs", {{{"name", "OUTPUT0"}, {"parameters", {{"binary_data", true}}}}}}};
  std::string h = head.dump();
  std::vector<float> v = {5, 6, 7, 8};
  std::string body = h + std::string(reinterpret_cast<char*>(v.data()), 16);
  httplib::Headers hdr = {{"Inference-Header-Content-Length", std::to_string(h.size())}};
  r = cli.Post("/v2/models/ident/infer", hdr, body, "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  size_t hl = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
  json rh = json::parse(r->body.substr(0, hl));
  EXPECT_EQ(rh["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(as_floats(r->body.substr(hl)), v);

  // gzip-compressed request body.
  std::string plain = req.dump();
  std::string gz(compressBound(plain.size()) + 64, '\0');
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = reinterpret_cast<Bytef*>(plain.data());
  zs.avail_in = static_cast<uInt>(plain.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  httplib::Headers gzh = {{"Content-Encoding", "gzip"}};
  r = cli.Post("/v2/models/ident/infer", gzh, gz, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["outputs"][0]["data"], json({1.0, 2.0, 3.0, 4.0}));

  // Errors map like Triton's: 400 bad input, 404 unknown model.
  r = cli.Post("/v2/models/ident/infer", "{not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  json bad = {{"inputs", {{{"name", "INPUT0"}, {"shape", {1, 4}}, {"datatype", "INT32"}, {"data", {1, 2, 3, 4}}}}}};
  r = cli.Post("/v2/models/ident/infer", bad.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("INPUT0"), std::string::npos);
  r = cli.Post("/v2/models/nothere/infer", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = cli.Post("/v2/repository/models/ident/load", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  r = cli.Get("/v2/models/ident/config");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json cfg = json::parse(r->body);
  EXPECT_EQ(cfg["max_batch_size"], 8);
  EXPECT_EQ(cfg["input"][0]["dims"], json({4}));  // numbers, as Triton prints them
  EXPECT_EQ(cfg["dynamic_batching"]["max_queue_delay_microseconds"], 200);
  r = cli.Get("/v2/models/stats");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_GE(json::parse(r->body)["model_stats"].size(), 4u);
  r = cli.Get("/v2/models/ident/stats");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_GT(json::parse(r->body)["model_stats"][0]["inference_count"].get<uint64_t>(), 0u);
}

TEST_F(ServeTest, PrometheusMetrics) {
  auto stub = stub_for(*server_);
  std::vector<float> v(4, 1.f);
  inference::ModelInferResponse resp;
  ASSERT_TRUE(stub->ModelInfer(ctx().get(), fp32_request("ident", v, 1), &resp).ok());
  httplib::Client cli("127.0.0.1", server_->metrics_port);
  auto r = cli.Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  for (const char* name :
       {"nv_inference_request_success{model=\"ident\",version=\"1\"}", "nv_inference_request_failure{model=\"ident\"",
        "nv_inference_count{", "nv_inference_exec_count{", "nv_inference_pending_request_count{",
        "nv_inference_request_duration_us{", "nv_inference_queue_duration_us{", "nv_inference_compute_input_duration_us{",
        "nv_inference_compute_infer_duration_us{", "nv_inference_compute_output_duration_us{", "nv_cpu_utilization",
        "nv_cpu_memory_used_bytes"})
    EXPECT_NE(r->body.find(name), std::string::npos) << name;
}

TEST_F(ServeTest, TraceAndLogSettingsAndHttpSharedMemoryEndpoints) {
  auto stub = stub_for(*server_);
  inference::LogSettingsRequest lr;
  (*lr.mutable_settings())["log_verbose_level"].set_uint32_param(2);
  inference::LogSettingsResponse lresp;
  ASSERT_TRUE(stub->LogSettings(ctx().get(), lr, &lresp).ok());
  EXPECT_EQ(lresp.settings().at("log_verbose_level").uint32_param(), 2u);
  EXPECT_TRUE(lresp.settings().at("log_info").bool_param());
  (*lr.mutable_settings())["no_such_setting"].set_bool_param(true);
  EXPECT_EQ(stub->LogSettings(ctx().get(), lr, &lresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  inference::TraceSettingRequest tr;
  (*tr.mutable_settings())["trace_rate"].add_value("50");
  inference::TraceSettingResponse tresp;
  ASSERT_TRUE(stub->TraceSetting(ctx().get(), tr, &tresp).ok());
  EXPECT_EQ(tresp.settings().at("trace_rate").value(0), "50");

  httplib::Client cli(server_->http_host(), server_->http_port);
  auto r = cli.Get("/v2/logging");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["log_verbose_level"], 2);
  // Shared memory over HTTP: register, status, bounds, unregister.
  std::string key = "/quiver_http_" + std::to_string(getpid());
  int fd = shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 32), 0);
  r = cli.Post("/v2/systemsharedmemory/region/h0/register", json({{"key", key}, {"byte_size", 32}}).dump(),
               "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = cli.Post("/v2/systemsharedmemory/region/h1/register", json({{"key", key}, {"offset", 16}, {"byte_size", 32}}).dump(),
               "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;  // region larger than the object
  r = cli.Get("/v2/systemsharedmemory/status");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body).size(), 1u);
  json req = {{"inputs", {{{"name", "INPUT0"}, {"shape", {1, 4}}, {"datatype", "FP32"},
                           {"parameters", {{"shared_memory_region", "h0"}, {"shared_memory_byte_size", 16},
                                           {"shared_memory_offset", 24}}}}}}};
  r = cli.Post("/v2/models/ident/infer", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("INPUT0"), std::string::npos) << r->body;
  r = cli.Post("/v2/systemsharedmemory/region/h0/unregister", "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  close(fd);
  shm_unlink(key.c_str());
}

// ---- servers of their own: explicit control mode, SIGTERM with requests in flight ----

TEST(ServeExplicit, LoadUnloadWhileServingAndNamesCannotEscape) {
  std::string repo = make_repo();
  {
    ServerProcess s(repo, {"--model-control-mode", "explicit", "--load-model", "ident"});
    auto stub = stub_for(s);
    inference::RepositoryIndexResponse index;
    ASSERT_TRUE(stub->RepositoryIndex(ctx().get(), {}, &index).ok());
    for (const auto& m : index.models()) EXPECT_EQ(m.state() == "READY", m.name() == "ident") << m.name();

    inference::RepositoryModelLoadRequest lr;
    inference::RepositoryModelLoadResponse lresp;
    for (const char* bad : {"../ident", "..", "ident/../pair", "/etc"}) {
      lr.set_model_name(bad);
      EXPECT_EQ(stub->RepositoryModelLoad(ctx().get(), lr, &lresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << bad;
    }
    lr.set_model_name("nonexistent");
    EXPECT_EQ(stub->RepositoryModelLoad(ctx().get(), lr, &lresp).error_code(), grpc::StatusCode::NOT_FOUND);

    // Load "slow", start requests on it, unload while they are in flight: none is dropped.
    lr.set_model_name("slow");
    ASSERT_TRUE(stub->RepositoryModelLoad(ctx().get(), lr, &lresp).ok());
    std::atomic<int> ok{0}, refused{0}, other{0};
    std::vector<std::thread> th;
    for (int i = 0; i < 8; ++i)
      th.emplace_back([&, i] {
        inference::ModelInferResponse resp;
        auto st = stub->ModelInfer(ctx().get(), fp32_request("slow", {float(i)}, 1, 1), &resp);
        if (st.ok()) ++ok;
        else if (st.error_code() == grpc::StatusCode::NOT_FOUND || st.error_code() == grpc::StatusCode::UNAVAILABLE) ++refused;
        else ++other;
      });
    EXPECT_TRUE(wait_pending(s, "slow"));
    inference::RepositoryModelUnloadRequest ur;
    ur.set_model_name("slow");
    inference::RepositoryModelUnloadResponse uresp;
    ASSERT_TRUE(stub->RepositoryModelUnload(ctx().get(), ur, &uresp).ok());
    for (auto& t : th) t.join();
    EXPECT_EQ(ok + refused, 8);
    EXPECT_EQ(other.load(), 0);
    EXPECT_GE(ok.load(), 1);
    inference::ModelReadyRequest mr;
    mr.set_name("slow");
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(stub->ModelReady(ctx().get(), mr, &ready).ok());
    EXPECT_FALSE(ready.ready());

    // Load with a JSON config override (as Triton clients send it).
    lr.set_model_name("pair");
    (*lr.mutable_parameters())["config"].set_string_param(
        R"({"backend":"identity","max_batch_size":0,"input":[{"name":"A","data_type":"TYPE_INT32","dims":[2,3]},{"name":"B","data_type":"TYPE_STRING","dims":[-1]}],"output":[{"name":"A_OUT","data_type":"TYPE_INT32","dims":[2,3]},{"name":"B_OUT","data_type":"TYPE_STRING","dims":[-1]}]})");
    auto st = stub->RepositoryModelLoad(ctx().get(), lr, &lresp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(s.stop(), 0);
  }
  fs::remove_all(repo);
}

TEST(ServeSignals, SigtermFinishesInFlightRequestsAndExitsZero) {
  std::string repo = make_repo();
  {
    ServerProcess s(repo);
    auto stub = stub_for(s);
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub->ServerLive(ctx().get(), {}, &live).ok());  // channel connected
    std::atomic<int> ok{0}, other{0};
    std::vector<std::thread> th;
    for (int i = 0; i < 6; ++i)
      th.emplace_back([&, i] {
        inference::ModelInferResponse resp;
        auto st = stub->ModelInfer(ctx().get(), fp32_request("slow", {float(i)}, 1, 1), &resp);
        if (st.ok()) ++ok;
        else ++other;
      });
    EXPECT_TRUE(wait_pending(s, "slow"));
    EXPECT_EQ(s.stop(), 0) << s.stderr_text;
    for (auto& t : th) t.join();
    // Requests that reached the server before SIGTERM complete; none fails with INTERNAL.
    EXPECT_GE(ok.load(), 1);
    EXPECT_EQ(ok + other, 6);
  }
  fs::remove_all(repo);
}

TEST(ServeStartup, BrokenConfigFailsStartWithFileAndLine) {
  std::string repo = quiver::test::make_temp_dir("serve-bad");
  write_text(fs::path(repo) / "broken/config.pbtxt", "backend: \"identity\"\nmax_batch_size: oops\n");
  fs::create_directories(fs::path(repo) / "broken/1");
  EXPECT_THROW(
      {
        try {
          ServerProcess s(repo, {}, 8000);
        } catch (const std::runtime_error& e) {
          std::string m = e.what();
          EXPECT_NE(m.find("config.pbtxt"), std::string::npos) << m;
          EXPECT_NE(m.find("line 2"), std::string::npos) << m;
          throw;
        }
      },
      std::runtime_error);
  fs::remove_all(repo);
}

TEST(ServePoll, NewChangedAndRemovedModelsFollowTheRepository) {
  std::string repo = quiver::test::make_temp_dir("serve-poll");
  write_text(fs::path(repo) / "ident/config.pbtxt", kIdent);
  fs::create_directories(fs::path(repo) / "ident/1");
  {
    ServerProcess s(repo, {"--model-control-mode", "poll", "--repository-poll-secs", "1"});
    auto stub = stub_for(s);
    auto ready = [&](const std::string& m) {
      inference::ModelReadyRequest r;
      r.set_name(m);
      inference::ModelReadyResponse resp;
      return stub->ModelReady(ctx().get(), r, &resp).ok() && resp.ready();
    };
    auto wait_for = [&](auto pred) {
      for (int i = 0; i < 100; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      return false;
    };
    EXPECT_TRUE(ready("ident"));
    EXPECT_FALSE(ready("versioned"));
    // Load RPCs are refused in poll mode.
    inference::RepositoryModelLoadRequest lr;
    lr.set_model_name("versioned");
    inference::RepositoryModelLoadResponse lresp;
    EXPECT_EQ(stub->RepositoryModelLoad(ctx().get(), lr, &lresp).error_code(), grpc::StatusCode::UNAVAILABLE);
    // A new model appears.
    write_text(fs::path(repo) / "versioned/config.pbtxt", kVersioned);
    for (const char* v : {"1", "2"}) fs::create_directories(fs::path(repo) / "versioned" / v);
    EXPECT_TRUE(wait_for([&] { return ready("versioned"); }));
    // A new version folder appears: the policy (latest 2) now serves 2 and 3.
    fs::create_directories(fs::path(repo) / "versioned/3");
    EXPECT_TRUE(wait_for([&] {
      inference::ModelMetadataRequest mr;
      mr.set_name("versioned");
      inference::ModelMetadataResponse mm;
      return stub->ModelMetadata(ctx().get(), mr, &mm).ok() && mm.versions_size() == 2 && mm.versions(1) == "3";
    }));
    // A model folder disappears.
    fs::remove_all(fs::path(repo) / "ident");
    EXPECT_TRUE(wait_for([&] { return !ready("ident"); }));
    EXPECT_EQ(s.stop(), 0);
  }
  fs::remove_all(repo);
}

TEST(ServeTls, ServerCertificateAndMutualTls) {
  std::string dir = quiver::test::make_temp_dir("serve-tls");
  auto sh = [&](const std::string& cmd) { return std::system(("cd " + dir + " && " + cmd + " >/dev/null 2>&1").c_str()); };
  if (sh("openssl version") != 0) GTEST_SKIP() << "openssl not available";
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=quiver-test-ca"), 0);
  ASSERT_EQ(sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost"), 0);
  write_text(fs::path(dir) / "ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  ASSERT_EQ(sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf"), 0);
  ASSERT_EQ(sh("openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client"), 0);
  ASSERT_EQ(sh("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2"), 0);
  auto read = [&](const char* f) {
    std::ifstream in(fs::path(dir) / f);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string repo = make_repo();
  {
    ServerProcess s(repo, {"--grpc-server-cert", dir + "/server.pem", "--grpc-server-key", dir + "/server.key",
                           "--grpc-root-cert", dir + "/ca.pem", "--grpc-use-ssl-mutual"});
    grpc::SslCredentialsOptions with_cert{read("ca.pem"), read("client.key"), read("client.pem")};
    grpc::SslCredentialsOptions no_cert{read("ca.pem"), "", ""};
    auto live = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
      grpc::ChannelArguments a;
      a.SetSslTargetNameOverride("localhost");
      auto st = inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(s.grpc_addr(), creds, a));
      inference::ServerLiveResponse r;
      return st->ServerLive(ctx(3000).get(), {}, &r).ok() && r.live();
    };
    EXPECT_TRUE(live(grpc::SslCredentials(with_cert)));
    EXPECT_FALSE(live(grpc::SslCredentials(no_cert)));  // mTLS: a client certificate is required
    EXPECT_FALSE(live(grpc::InsecureChannelCredentials()));
    EXPECT_EQ(s.stop(), 0);
  }
  fs::remove_all(repo);
  fs::remove_all(dir);
}

TEST(ServeOnnx, AutoCompletedOnnxModelsServeThroughTheEngine) {
#ifndef QUIVER_TEST_ONNX
  GTEST_SKIP() << "built without the ONNX engine";
#else
  const fs::path models = fs::path(QUIVER_SHARED_DIR) / "models/hep";
  if (!fs::exists(models / "hls4ml_three_layer/model.onnx")) GTEST_SKIP() << "shared models not present";
  std::string repo = quiver::test::make_temp_dir("serve-onnx");
  fs::create_directories(fs::path(repo) / "hls/1");
  fs::copy_file(models / "hls4ml_three_layer/model.onnx", fs::path(repo) / "hls/1/model.onnx");
  // KIND_GPU: the GPU executor (its emulated device here, chosen by the "device" parameter).
  fs::create_directories(fs::path(repo) / "hls_gpu/1");
  fs::copy_file(models / "hls4ml_three_layer/model.onnx", fs::path(repo) / "hls_gpu/1/model.onnx");
  write_text(fs::path(repo) / "hls_gpu/config.pbtxt",
             "backend: \"onnxruntime\"\ninstance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]\n"
             "parameters { key: \"device\" value { string_value: \"gpu-emulator\" } }\n");
  // Triton's usual config for a model with a fixed batch of 1: clients send [16], the model sees [1, 16].
  fs::create_directories(fs::path(repo) / "hls_reshaped/1");
  fs::copy_file(models / "hls4ml_three_layer/model.onnx", fs::path(repo) / "hls_reshaped/1/model.onnx");
  write_text(fs::path(repo) / "hls_reshaped/config.pbtxt",
             "platform: \"onnxruntime_onnx\"\nmax_batch_size: 0\n"
             "input [ { name: \"input_1_0\" data_type: TYPE_FP32 dims: [ 16 ] reshape: { shape: [ 1, 16 ] } } ]\n"
             "output [ { name: \"output_softmax_Softmax_01\" data_type: TYPE_FP32 dims: [ 5 ] reshape: { shape: [ 1, 5 ] } } ]\n");
  // An ensemble: an identity "pre" step feeding the reshaped MLP, steps listed in reverse order,
  // the intermediate tensor also an ensemble output.
  fs::create_directories(fs::path(repo) / "pre/1");
  write_text(fs::path(repo) / "pre/config.pbtxt",
             "backend: \"identity\"\nmax_batch_size: 0\n"
             "input [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n");
  fs::create_directories(fs::path(repo) / "chain/1");
  write_text(fs::path(repo) / "chain/config.pbtxt",
             "platform: \"ensemble\"\nmax_batch_size: 0\n"
             "input [ { name: \"RAW\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "output [ { name: \"PROBS\" data_type: TYPE_FP32 dims: [ 5 ] }, { name: \"MID\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "ensemble_scheduling { step [\n"
             "  { model_name: \"hls_reshaped\" model_version: -1 input_map { key: \"input_1_0\" value: \"MID\" }\n"
             "    output_map { key: \"output_softmax_Softmax_01\" value: \"PROBS\" } },\n"
             "  { model_name: \"pre\" model_version: -1 input_map { key: \"INPUT0\" value: \"RAW\" }\n"
             "    output_map { key: \"OUTPUT0\" value: \"MID\" } } ] }\n");
  fs::create_directories(fs::path(repo) / "pn/1");
  fs::copy_file(models / "particlenet_ak4_hlt/model.onnx", fs::path(repo) / "pn/1/model.onnx");
  write_text(fs::path(repo) / "pn/config.pbtxt", "platform: \"onnxruntime_onnx\"\n");
  {
    ServerProcess s(repo);
    auto stub = stub_for(s);
    inference::ModelConfigRequest cr;
    cr.set_name("hls");
    inference::ModelConfigResponse cfg;
    ASSERT_TRUE(stub->ModelConfig(ctx().get(), cr, &cfg).ok());
    EXPECT_EQ(cfg.config().max_batch_size(), 0);  // fixed batch of 1 in the file
    ASSERT_EQ(cfg.config().input_size(), 1);
    EXPECT_EQ(cfg.config().parameters().at("quiver.sha256").string_value(),
              "0f9e0ce651a9af2742c9fb2f3d2ec72347adaa388ad8bbc863ef00a545341d09");
    // The served answers equal ONNX Runtime's on the model's reference sets (set 0 is then sent to
    // the other variants below, which must give the same values).
    const auto refs = quiver::test::reference_sets("hls4ml_three_layer");
    ASSERT_EQ(refs.size(), 2u);
    auto request = [&](const quiver::test::ReferenceSet& set) {
      inference::ModelInferRequest q;
      q.set_model_name("hls");
      auto* in = q.add_inputs();
      in->set_name(cfg.config().input(0).name());
      in->set_datatype("FP32");
      for (int64_t d : set.inputs.at(0).tensor.dims()) in->add_shape(d);
      q.add_raw_input_contents(std::string(static_cast<const char*>(set.inputs[0].tensor.raw()), set.inputs[0].tensor.nbytes()));
      return q;
    };
    for (const auto& set : refs) {
      inference::ModelInferResponse ref_resp;
      auto st = stub->ModelInfer(ctx().get(), request(set), &ref_resp);
      ASSERT_TRUE(st.ok()) << set.name << ": " << st.error_message();
      auto got = as_floats(ref_resp.raw_output_contents(0));
      EXPECT_TRUE(quiver::test::matches_reference(quiver::Tensor::from_vector(got, {static_cast<int64_t>(got.size())}),
                                                  set.outputs.at(0).tensor))
          << set.name;
    }
    inference::ModelInferRequest r = request(refs[0]);
    const std::vector<float> x(refs[0].inputs[0].tensor.data<float>(), refs[0].inputs[0].tensor.data<float>() + 16);
    inference::ModelInferResponse resp;
    auto st = stub->ModelInfer(ctx().get(), r, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    auto y = as_floats(resp.raw_output_contents(0));
    ASSERT_EQ(y.size(), 5u);
    r.set_model_name("hls_gpu");
    inference::ModelInferResponse gresp;
    st = stub->ModelInfer(ctx().get(), r, &gresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    auto gy = as_floats(gresp.raw_output_contents(0));
    ASSERT_EQ(gy.size(), y.size());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(gy[i], y[i], 1e-6f) << i;

    inference::ModelInferRequest rr = r;
    rr.set_model_name("hls_reshaped");
    rr.mutable_inputs(0)->clear_shape();
    rr.mutable_inputs(0)->add_shape(16);
    inference::ModelInferResponse rresp;
    st = stub->ModelInfer(ctx().get(), rr, &rresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(std::vector<int64_t>(rresp.outputs(0).shape().begin(), rresp.outputs(0).shape().end()), (std::vector<int64_t>{5}));
    auto ry = as_floats(rresp.raw_output_contents(0));
    ASSERT_EQ(ry.size(), y.size());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(ry[i], y[i]) << i;
    {
      inference::ModelInferRequest er = rr;
      er.set_model_name("chain");
      er.mutable_inputs(0)->set_name("RAW");
      inference::ModelInferResponse eresp;
      st = stub->ModelInfer(ctx().get(), er, &eresp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(eresp.outputs_size(), 2);
      EXPECT_EQ(eresp.outputs(0).name(), "PROBS");
      auto ey = as_floats(eresp.raw_output_contents(0));
      ASSERT_EQ(ey.size(), y.size());
      for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(ey[i], y[i]) << i;
      EXPECT_EQ(as_floats(eresp.raw_output_contents(1)), x);  // the intermediate, as an output
      inference::ModelMetadataRequest emr;
      emr.set_name("chain");
      inference::ModelMetadataResponse emm;
      ASSERT_TRUE(stub->ModelMetadata(ctx().get(), emr, &emm).ok());
      EXPECT_EQ(emm.platform(), "ensemble");
    }
    rr.mutable_inputs(0)->add_shape(1);  // [16, 1]: not the config's dims
    st = stub->ModelInfer(ctx().get(), rr, &rresp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("input_1_0"), std::string::npos) << st.error_message();

    cr.set_name("pn");
    ASSERT_TRUE(stub->ModelConfig(ctx().get(), cr, &cfg).ok());
    inference::ModelMetadataRequest mr;
    mr.set_name("pn");
    inference::ModelMetadataResponse mm;
    ASSERT_TRUE(stub->ModelMetadata(ctx().get(), mr, &mm).ok());
    EXPECT_EQ(mm.platform(), "onnxruntime_onnx");
    EXPECT_GE(mm.inputs_size(), 2);
    EXPECT_EQ(s.stop(), 0);
  }
  fs::remove_all(repo);
#endif
}

// A Triton FIL repository (config written as FIL's documentation writes it) is served unchanged:
// input__0 / output__0, output_class, predict_proba and threshold; the answers match the shared
// expected predictions. A forest without a config keeps Quiver's own interface.
TEST(ServeForest, TritonFilRepositoryServesUnchanged) {
  const fs::path forest = fs::path(QUIVER_SHARED_DIR) / "models/forest/xgboost";
  if (!fs::exists(forest / "xgb17/BinaryLogisticAudit17.json")) GTEST_SKIP() << "shared models not present";
  std::string repo = quiver::test::make_temp_dir("serve-fil");
  auto add = [&](const std::string& name, const fs::path& model, const std::string& cfg) {
    fs::create_directories(fs::path(repo) / name / "1");
    fs::copy_file(model, fs::path(repo) / name / "1/xgboost.json");
    if (!cfg.empty()) write_text(fs::path(repo) / name / "config.pbtxt", cfg);
  };
  auto fil_config = [](int features, int out_dims, const std::string& params) {
    return "backend: \"fil\"\nmax_batch_size: 32768\n"
           "input [ { name: \"input__0\" data_type: TYPE_FP32 dims: [ " + std::to_string(features) + " ] } ]\n"
           "output [ { name: \"output__0\" data_type: TYPE_FP32 dims: [ " + std::to_string(out_dims) + " ] } ]\n"
           "instance_group [{ kind: KIND_AUTO }]\n"
           "parameters [ { key: \"model_type\" value: { string_value: \"xgboost_json\" } }" + params + " ]\n"
           "dynamic_batching {}\n";
  };
  auto param = [](const char* k, const char* v) {
    return std::string(", { key: \"") + k + "\" value: { string_value: \"" + v + "\" } }";
  };
  const fs::path audit = forest / "xgb17/BinaryLogisticAudit17.json", iris = forest / "jpmml/MultinomialClassificationIris.json";
  add("audit_proba", audit, fil_config(4, 1, param("output_class", "true") + param("predict_proba", "true")));
  add("audit_class", audit, fil_config(4, 1, param("output_class", "true") + param("threshold", "0.3")));
  add("iris_proba", iris, fil_config(4, 3, param("output_class", "true") + param("predict_proba", "true")));
  add("iris_class", iris, fil_config(4, 1, param("output_class", "true")));
  add("audit_native", audit, "");
  // classification extension with the class names from a label file
  std::string labelled = fil_config(4, 3, param("output_class", "true") + param("predict_proba", "true"));
  labelled.replace(labelled.find("dims: [ 3 ] }"), 13, "dims: [ 3 ] label_filename: \"species.txt\" }");
  add("iris_labels", iris, labelled);
  write_text(fs::path(repo) / "iris_labels/species.txt", "setosa\nversicolor\nvirginica\n");

  // inputs and expectations from the shared data
  auto features = [](const fs::path& csv, const std::vector<std::string>& cols, size_t rows) {
    auto t = quiver::forest::parse_csv(quiver::read_file(csv.string()), 1, csv.string());
    t.rows.resize(std::min(rows, t.rows.size()));
    return quiver::forest::csv_to_features(t, static_cast<int>(cols.size()), cols, nullptr, csv.string());
  };
  auto column = [](const fs::path& csv, const std::string& name) {
    auto t = quiver::forest::parse_csv(quiver::read_file(csv.string()), 1, csv.string());
    size_t c = std::find(t.header.begin(), t.header.end(), name) - t.header.begin();
    std::vector<float> v;
    for (auto& r : t.rows) v.push_back(std::stof(r.at(c)));
    return v;
  };
  const size_t n = 64;
  std::vector<float> xa = features(forest / "xgb17/data/Audit.csv", {"Age", "Income", "Deductions", "Hours"}, n);
  std::vector<float> xi = features(forest / "jpmml/data/Iris.csv", {"Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"}, 150);
  std::vector<float> pa = column(forest / "xgb17/expected/BinaryLogisticAudit17.csv", "prediction");
  std::vector<std::vector<float>> pi;
  for (int k = 0; k < 3; ++k) pi.push_back(column(forest / "jpmml/expected/MultinomialClassificationIris.csv", "probability(" + std::to_string(k) + ")"));

  {
    ServerProcess s(repo);
    auto stub = stub_for(s);
    auto infer = [&](const std::string& model, const std::string& input, const std::vector<float>& x, size_t rows,
                     std::vector<float>* y, std::string* out_name = nullptr) {
      inference::ModelInferRequest r;
      r.set_model_name(model);
      auto* in = r.add_inputs();
      in->set_name(input);
      in->set_datatype("FP32");
      in->add_shape(static_cast<int64_t>(rows));
      in->add_shape(static_cast<int64_t>(x.size() / rows));
      r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
      inference::ModelInferResponse resp;
      auto st = stub->ModelInfer(ctx().get(), r, &resp);
      if (st.ok()) {
        *y = as_floats(resp.raw_output_contents(0));
        if (out_name) *out_name = resp.outputs(0).name();
      }
      return st;
    };
    std::vector<float> y;
    std::string out_name;
    auto st = infer("audit_proba", "input__0", xa, n, &y, &out_name);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(out_name, "output__0");
    ASSERT_EQ(y.size(), n);
    for (size_t r = 0; r < n; ++r) EXPECT_NEAR(y[r], pa[r], 1e-5f * std::max(1.0f, pa[r])) << "row " << r;
    ASSERT_TRUE(infer("audit_class", "input__0", xa, n, &y).ok());
    for (size_t r = 0; r < n; ++r) {
      if (std::fabs(pa[r] - 0.3f) > 1e-5f) {
        EXPECT_EQ(y[r], pa[r] > 0.3f ? 1.0f : 0.0f) << "row " << r;
      }
    }
    ASSERT_TRUE(infer("iris_proba", "input__0", xi, 150, &y).ok());
    ASSERT_EQ(y.size(), 450u);
    for (size_t r = 0; r < 150; ++r)
      for (int k = 0; k < 3; ++k) EXPECT_NEAR(y[r * 3 + k], pi[k][r], 1e-5f) << "row " << r << " class " << k;
    ASSERT_TRUE(infer("iris_class", "input__0", xi, 150, &y).ok());
    for (size_t r = 0; r < 150; ++r) {
      int best = 0;
      for (int k = 1; k < 3; ++k) if (pi[k][r] > pi[best][r]) best = k;
      EXPECT_EQ(y[r], static_cast<float>(best)) << "row " << r;
    }
    // Quiver's interface for the auto-completed model (Triton's auto-complete default
    // max_batch_size 4); FIL's input name is refused there, by name
    const std::vector<float> x4(xa.begin(), xa.begin() + 16);
    st = infer("audit_native", "input", x4, 4, &y, &out_name);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(out_name, "prediction");
    for (size_t r = 0; r < 4; ++r) EXPECT_NEAR(y[r], pa[r], 1e-5f) << "row " << r;
    st = infer("audit_native", "input__0", x4, 4, &y);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("input__0"), std::string::npos) << st.error_message();
    // a wrong row width names the tensor
    st = infer("iris_proba", "input__0", std::vector<float>(10, 1.0f), 2, &y);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("input__0"), std::string::npos) << st.error_message();

    // classification over gRPC (top 2 per row) and HTTP JSON (top 1), labels from the file
    {
      inference::ModelInferRequest r;
      r.set_model_name("iris_labels");
      auto* in = r.add_inputs();
      in->set_name("input__0");
      in->set_datatype("FP32");
      in->add_shape(150);
      in->add_shape(4);
      r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(xi.data()), xi.size() * sizeof(float)));
      auto* o = r.add_outputs();
      o->set_name("output__0");
      (*o->mutable_parameters())["classification"].set_int64_param(2);
      inference::ModelInferResponse resp;
      st = stub->ModelInfer(ctx().get(), r, &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      EXPECT_EQ(resp.outputs(0).datatype(), "BYTES");
      EXPECT_EQ(std::vector<int64_t>(resp.outputs(0).shape().begin(), resp.outputs(0).shape().end()), (std::vector<int64_t>{150, 2}));
      const std::string& raw = resp.raw_output_contents(0);
      const char* names[] = {"setosa", "versicolor", "virginica"};
      size_t p = 0;
      for (size_t row = 0; row < 150; ++row) {
        int order[3] = {0, 1, 2};
        std::stable_sort(order, order + 3, [&](int a, int b) { return pi[a][row] > pi[b][row]; });
        for (int j = 0; j < 2; ++j) {
          ASSERT_LE(p + 4, raw.size());
          uint32_t len;
          std::memcpy(&len, raw.data() + p, 4);
          std::string got = raw.substr(p + 4, len);
          p += 4 + len;
          const size_t c1 = got.find(':'), c2 = got.find(':', c1 + 1);
          ASSERT_NE(c2, std::string::npos) << got;
          EXPECT_EQ(got.substr(c1 + 1), std::to_string(order[j]) + ":" + names[order[j]]) << "row " << row;
          EXPECT_NEAR(std::stof(got.substr(0, c1)), pi[order[j]][row], 2e-6f) << got;
        }
      }
      EXPECT_EQ(p, raw.size());
      httplib::Client http("127.0.0.1", s.http_port);
      json body = {{"inputs", json::array({{{"name", "input__0"}, {"shape", {1, 4}}, {"datatype", "FP32"},
                                            {"data", std::vector<float>(xi.end() - 4, xi.end())}}})},
                   {"outputs", json::array({{{"name", "output__0"}, {"parameters", {{"classification", 1}}}}})}};
      auto hr = http.Post("/v2/models/iris_labels/infer", body.dump(), "application/json");
      ASSERT_TRUE(hr);
      ASSERT_EQ(hr->status, 200) << hr->body;
      auto hj = json::parse(hr->body);
      EXPECT_EQ(hj["outputs"][0]["shape"], json::parse("[1,1]"));
      const std::string top = hj["outputs"][0]["data"][0].get<std::string>();
      EXPECT_NE(top.find(":2:virginica"), std::string::npos) << top;  // the last Iris row is a virginica
    }

    // metadata as Triton FIL clients read it
    inference::ModelMetadataRequest mr;
    mr.set_name("iris_proba");
    inference::ModelMetadataResponse mm;
    ASSERT_TRUE(stub->ModelMetadata(ctx().get(), mr, &mm).ok());
    ASSERT_EQ(mm.outputs_size(), 1);
    EXPECT_EQ(mm.outputs(0).name(), "output__0");
    EXPECT_EQ(std::vector<int64_t>(mm.outputs(0).shape().begin(), mm.outputs(0).shape().end()), (std::vector<int64_t>{-1, 3}));
    EXPECT_EQ(s.stop(), 0);
  }
  fs::remove_all(repo);
}

// --auth-token-file: every call but the health checks needs a listed bearer token, on both
// protocols; refusals (401 / UNAUTHENTICATED) say what to send and show no token.
TEST(ServeAuth, BearerTokensOnGrpcAndHttpHealthStaysOpen) {
  const std::string repo = make_repo();
  const std::string tokens = repo + "/../" + fs::path(repo).filename().string() + ".tokens";
  write_text(tokens, "# test tokens\nfirst-secret-token\nsecond-secret-token\n");
  ServerProcess server(repo, {"--auth-token-file", tokens});
  auto stub = stub_for(server);
  const auto req = fp32_request("ident", {1, 2, 3, 4}, 1);
  auto call = [&](const std::string& auth) {
    auto c = ctx();
    if (!auth.empty()) c->AddMetadata("authorization", auth);
    inference::ModelInferResponse resp;
    return stub->ModelInfer(c.get(), req, &resp);
  };
  for (const std::string bad : {"", "Bearer wrong-token", "first-secret-token", "Basic first-secret-token",
                                "Bearer first-secret-toke"}) {
    auto st = call(bad);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "'" << bad << "': " << st.error_message();
    EXPECT_NE(st.error_message().find("bearer token"), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find("secret"), std::string::npos) << st.error_message();
  }
  EXPECT_TRUE(call("Bearer first-secret-token").ok());
  EXPECT_TRUE(call("bearer second-secret-token").ok());
  {  // Health stays open; metadata, statistics and the rest do not.
    inference::ServerReadyResponse r;
    EXPECT_TRUE(stub->ServerReady(ctx().get(), {}, &r).ok());
    EXPECT_TRUE(r.ready());
    inference::ServerLiveResponse l;
    EXPECT_TRUE(stub->ServerLive(ctx().get(), {}, &l).ok());
    inference::ModelReadyRequest mq;
    mq.set_name("ident");
    inference::ModelReadyResponse mr;
    EXPECT_TRUE(stub->ModelReady(ctx().get(), mq, &mr).ok());
    EXPECT_TRUE(mr.ready());
    inference::ModelMetadataRequest q;
    q.set_name("ident");
    inference::ModelMetadataResponse m;
    EXPECT_EQ(stub->ModelMetadata(ctx().get(), q, &m).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    auto c = ctx();
    c->AddMetadata("authorization", "Bearer second-secret-token");
    EXPECT_TRUE(stub->ModelMetadata(c.get(), q, &m).ok());
    inference::ModelStatisticsResponse sr;
    EXPECT_EQ(stub->ModelStatistics(ctx().get(), {}, &sr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {  // A stream without a token ends with UNAUTHENTICATED before any answer.
    auto c = ctx();
    auto stream = stub->ModelStreamInfer(c.get());
    stream->Write(req);
    stream->WritesDone();
    inference::ModelStreamInferResponse r;
    EXPECT_FALSE(stream->Read(&r));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // HTTP: the same tokens, the same open health endpoints.
  httplib::Client cli(server.http_host(), server.http_port);
  const std::string body =
      R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})";
  auto r = cli.Post("/v2/models/ident/infer", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer realm=\"quiver\"");
  EXPECT_NE(r->body.find("bearer token"), std::string::npos) << r->body;
  r = cli.Post("/v2/models/ident/infer", {{"Authorization", "Bearer nope"}}, body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = cli.Post("/v2/models/ident/infer", {{"Authorization", "Bearer first-secret-token"}}, body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  for (const char* open : {"/v2/health/live", "/v2/health/ready", "/v2/models/ident/ready"}) {
    auto h = cli.Get(open);
    ASSERT_TRUE(h) << open;
    EXPECT_EQ(h->status, 200) << open;
  }
  for (const char* closed : {"/v2", "/v2/models/ident", "/v2/models/ident/config", "/v2/models/stats"}) {
    auto h = cli.Get(closed);
    ASSERT_TRUE(h) << closed;
    EXPECT_EQ(h->status, 401) << closed;
  }
  server.stop();
  fs::remove(tokens);
  fs::remove_all(repo);
}

// A token file that cannot be used stops the server at startup, naming the file.
TEST(ServeAuth, UnusableTokenFileStopsStartup) {
  const std::string repo = make_repo();
  const std::string empty = repo + ".empty-tokens";
  write_text(empty, "# no tokens yet\n");
  for (const std::string& f : {empty, repo + ".missing-tokens"}) {
    try {
      ServerProcess s(repo, {"--auth-token-file", f}, 10000);
      ADD_FAILURE() << "started with token file " << f;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
  fs::remove(empty);
  fs::remove_all(repo);
}

}  // namespace
