// CUDA shared memory (Triton's extension) end to end: this process exports device memory, the real
// `quiver serve` maps it by its IPC handle, reads inputs from it and writes outputs into it.
// Without a GPU (CI) the device memory is the emulated, POSIX-backed kind and the server runs with
// --cuda-shm-emulation, which exercises the same registration, bounds checks and copy paths;
// QUIVER_TEST_DEVICE=cuda runs the same tests on a real device (a second process must open the
// handle: CUDA refuses to map an IPC handle in the process that exported it).
#include <absl/strings/escaping.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "quiver/core/error.hpp"
#include "quiver/gpu/shared_memory.hpp"
#include "serve/serve_fixtures.hpp"

using namespace quiver::test;
using nlohmann::json;
using quiver::Error;
using quiver::ErrorCode;
using quiver::gpu::SharedDeviceMemory;

namespace {

bool real_cuda() {
  const char* d = std::getenv("QUIVER_TEST_DEVICE");
  return d && std::string(d) == "cuda";
}

std::unique_ptr<SharedDeviceMemory> device_memory(size_t bytes) {
  return SharedDeviceMemory::allocate(0, bytes, /*emulated=*/!real_cuda());
}

template <class T>
std::vector<T> read_back(const SharedDeviceMemory& m, size_t offset, size_t n) {
  std::vector<T> v(n);
  m.read(offset, v.data(), n * sizeof(T));
  return v;
}

void expect_code(ErrorCode code, const std::string& needle, const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(SharedDeviceMemory, EmulatedHandlesRoundTripAndAreChecked) {
  auto mem = SharedDeviceMemory::allocate(0, 64, true);
  ASSERT_EQ(mem->handle().size(), quiver::gpu::kIpcHandleBytes);
  const std::vector<float> v = {1.5f, -2.f, 3.25f, 4.f};
  mem->write(8, v.data(), 16);
  auto peer = SharedDeviceMemory::open(mem->handle(), 0, 64, /*allow_emulated=*/true);
  EXPECT_EQ(read_back<float>(*peer, 8, 4), v);
  peer->write(32, v.data(), 4);
  EXPECT_EQ(read_back<float>(*mem, 32, 1)[0], 1.5f);

  expect_code(ErrorCode::InvalidArgument, "--cuda-shm-emulation", [&] { SharedDeviceMemory::open(mem->handle(), 0, 64); });
  expect_code(ErrorCode::InvalidArgument, "exceeds the 64-byte",
              [&] { SharedDeviceMemory::open(mem->handle(), 0, 65, true); });
  expect_code(ErrorCode::InvalidArgument, "64 bytes, this one 10",
              [&] { SharedDeviceMemory::open(mem->handle().substr(0, 10), 0, 8, true); });
  expect_code(ErrorCode::InvalidArgument, "device 0, not 1", [&] { SharedDeviceMemory::open(mem->handle(), 1, 8, true); });
  float x = 0;
  expect_code(ErrorCode::InvalidArgument, "outside the 64-byte", [&] { peer->read(61, &x, 4); });
  expect_code(ErrorCode::InvalidArgument, "outside the 64-byte", [&] { peer->write(~size_t(0) - 2, &x, 4); });
  const std::string handle = mem->handle();
  mem.reset();  // the exporter frees it: the handle opens nothing any more
  expect_code(ErrorCode::InvalidArgument, "cannot be opened", [&] { SharedDeviceMemory::open(handle, 0, 8, true); });
}

class CudaShmServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(make_repo());
    std::vector<std::string> args;
    if (!real_cuda()) args.push_back("--cuda-shm-emulation");
    server_ = new ServerProcess(*repo_, args);
  }
  static void TearDownTestSuite() {
    delete server_;
    std::filesystem::remove_all(*repo_);
    delete repo_;
  }
  static void set_shm(google::protobuf::Map<std::string, inference::InferParameter>& p, const std::string& region,
                      int64_t bytes, int64_t offset) {
    p["shared_memory_region"].set_string_param(region);
    p["shared_memory_byte_size"].set_int64_param(bytes);
    p["shared_memory_offset"].set_int64_param(offset);
  }
  static grpc::Status register_region(Stub& stub, const std::string& name, const SharedDeviceMemory& m,
                                      uint64_t bytes) {
    inference::CudaSharedMemoryRegisterRequest q;
    q.set_name(name);
    q.set_raw_handle(m.handle());
    q.set_device_id(m.device());
    q.set_byte_size(bytes);
    inference::CudaSharedMemoryRegisterResponse r;
    return stub.CudaSharedMemoryRegister(ctx().get(), q, &r);
  }
  static grpc::Status unregister_region(Stub& stub, const std::string& name) {
    inference::CudaSharedMemoryUnregisterRequest q;
    q.set_name(name);
    inference::CudaSharedMemoryUnregisterResponse r;
    return stub.CudaSharedMemoryUnregister(ctx().get(), q, &r);
  }
  static inference::ModelInferRequest ident_request(const std::string& region, int64_t in_off, int64_t out_off) {
    inference::ModelInferRequest r;
    r.set_model_name("ident");
    auto* in = r.add_inputs();
    in->set_name("INPUT0");
    in->set_datatype("FP32");
    in->add_shape(2);
    in->add_shape(4);
    set_shm(*in->mutable_parameters(), region, 32, in_off);
    auto* out = r.add_outputs();
    out->set_name("OUTPUT0");
    set_shm(*out->mutable_parameters(), region, 32, out_off);
    return r;
  }
  static std::string* repo_;
  static ServerProcess* server_;
};
std::string* CudaShmServer::repo_ = nullptr;
ServerProcess* CudaShmServer::server_ = nullptr;

TEST_F(CudaShmServer, MetadataListsTheExtension) {
  auto stub = stub_for(*server_);
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(stub->ServerMetadata(ctx().get(), {}, &meta).ok());
  EXPECT_EQ(std::count(meta.extensions().begin(), meta.extensions().end(), "cuda_shared_memory"), 1);
}

TEST_F(CudaShmServer, GrpcInputsFromAndOutputsIntoDeviceMemory) {
  auto stub = stub_for(*server_);
  auto mem = device_memory(256);
  std::vector<float> x(8);
  for (int i = 0; i < 8; ++i) x[i] = 0.5f * float(i) - 1.f;
  mem->write(0, x.data(), 32);
  ASSERT_TRUE(register_region(*stub, "dev0", *mem, 256).ok());
  inference::CudaSharedMemoryStatusResponse status;
  ASSERT_TRUE(stub->CudaSharedMemoryStatus(ctx().get(), {}, &status).ok());
  ASSERT_EQ(status.regions().size(), 1u);
  EXPECT_EQ(status.regions().at("dev0").byte_size(), 256u);
  EXPECT_EQ(status.regions().at("dev0").device_id(), 0u);
  inference::SystemSharedMemoryStatusResponse sys;
  ASSERT_TRUE(stub->SystemSharedMemoryStatus(ctx().get(), {}, &sys).ok());
  EXPECT_TRUE(sys.regions().empty());  // listed by kind

  auto r = ident_request("dev0", 0, 64);
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), r, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.raw_output_contents_size(), 1);  // one entry per output, empty: the data went to the device
  EXPECT_TRUE(resp.raw_output_contents(0).empty());
  EXPECT_EQ(resp.outputs(0).parameters().at("shared_memory_region").string_param(), "dev0");
  EXPECT_EQ(read_back<float>(*mem, 64, 8), x);

  // Bounds, sizes and names: the right status, naming the tensor; the server keeps serving.
  expect_error(*stub, ident_request("dev0", 240, 64), grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  expect_error(*stub, ident_request("dev0", 0, 250), grpc::StatusCode::INVALID_ARGUMENT, "OUTPUT0");
  auto wrong = ident_request("dev0", 0, 64);
  (*wrong.mutable_inputs(0)->mutable_parameters())["shared_memory_byte_size"].set_int64_param(28);
  expect_error(*stub, wrong, grpc::StatusCode::INVALID_ARGUMENT, "INPUT0");
  auto small = ident_request("dev0", 0, 64);
  (*small.mutable_outputs(0)->mutable_parameters())["shared_memory_byte_size"].set_int64_param(16);
  expect_error(*stub, small, grpc::StatusCode::INVALID_ARGUMENT, "OUTPUT0");

  EXPECT_EQ(register_region(*stub, "dev0", *mem, 64).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto big = register_region(*stub, "big", *mem, 1 << 20);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(big.error_message().find("'big'"), std::string::npos) << big.error_message();
  inference::SystemSharedMemoryUnregisterRequest su;
  su.set_name("dev0");
  inference::SystemSharedMemoryUnregisterResponse sur;
  EXPECT_EQ(stub->SystemSharedMemoryUnregister(ctx().get(), su, &sur).error_code(), grpc::StatusCode::NOT_FOUND);

  ASSERT_TRUE(unregister_region(*stub, "dev0").ok());
  EXPECT_EQ(unregister_region(*stub, "dev0").error_code(), grpc::StatusCode::NOT_FOUND);
  expect_error(*stub, ident_request("dev0", 0, 64), grpc::StatusCode::INVALID_ARGUMENT, "dev0");
}

TEST_F(CudaShmServer, BytesAndIntTensorsThroughDeviceMemory) {
  auto stub = stub_for(*server_);
  auto mem = device_memory(512);
  const std::vector<int32_t> a = {1, -2, 3, -4, 5, -6};
  const std::string b = bytes_elem("jet") + bytes_elem("") + bytes_elem("muon track");
  mem->write(0, a.data(), 24);
  mem->write(64, b.data(), b.size());
  ASSERT_TRUE(register_region(*stub, "pairmem", *mem, 512).ok());
  inference::ModelInferRequest r;
  r.set_model_name("pair");
  auto* ia = r.add_inputs();
  ia->set_name("A");
  ia->set_datatype("INT32");
  ia->add_shape(2);
  ia->add_shape(3);
  set_shm(*ia->mutable_parameters(), "pairmem", 24, 0);
  auto* ib = r.add_inputs();
  ib->set_name("B");
  ib->set_datatype("BYTES");
  ib->add_shape(3);
  set_shm(*ib->mutable_parameters(), "pairmem", static_cast<int64_t>(b.size()), 64);
  set_shm(*r.add_outputs()->mutable_parameters(), "pairmem", 24, 256);
  r.mutable_outputs(0)->set_name("A_OUT");
  set_shm(*r.add_outputs()->mutable_parameters(), "pairmem", 128, 320);
  r.mutable_outputs(1)->set_name("B_OUT");
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), r, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.raw_output_contents_size(), 2);
  EXPECT_EQ(read_back<int32_t>(*mem, 256, 6), a);
  EXPECT_EQ(resp.outputs(1).parameters().at("shared_memory_byte_size").int64_param(), static_cast<int64_t>(b.size()));
  std::string got(b.size(), '\0');
  mem->read(320, got.data(), got.size());
  EXPECT_EQ(got, b);
  // A malformed BYTES element in device memory is caught like one in the request body.
  const uint32_t too_long = 1000;
  mem->write(64, &too_long, 4);
  expect_error(*stub, r, grpc::StatusCode::INVALID_ARGUMENT, "'B' element 0");
  ASSERT_TRUE(unregister_region(*stub, "pairmem").ok());
}

TEST_F(CudaShmServer, HttpRegisterStatusInferUnregister) {
  auto mem = device_memory(128);
  const std::vector<float> x = {9, 8, 7, 6, 5, 4, 3, 2};
  mem->write(0, x.data(), 32);
  httplib::Client cli(server_->http_host(), server_->http_port);
  json reg = {{"raw_handle", {{"b64", absl::Base64Escape(mem->handle())}}}, {"device_id", 0}, {"byte_size", 128}};
  auto r = cli.Post("/v2/cudasharedmemory/region/h0/register", reg.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = cli.Get("/v2/cudasharedmemory/region/h0/status");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json::parse(R"([{"name":"h0","device_id":0,"byte_size":128}])"));
  json req = {{"inputs", {{{"name", "INPUT0"}, {"shape", {2, 4}}, {"datatype", "FP32"},
                           {"parameters", {{"shared_memory_region", "h0"}, {"shared_memory_byte_size", 32}}}}}},
              {"outputs", {{{"name", "OUTPUT0"},
                            {"parameters", {{"shared_memory_region", "h0"}, {"shared_memory_byte_size", 32},
                                            {"shared_memory_offset", 96}}}}}}};
  r = cli.Post("/v2/models/ident/infer", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json out = json::parse(r->body)["outputs"][0];
  // As Triton: name, datatype and shape only (its HTTP client reads any output parameters as
  // binary data).
  EXPECT_EQ(out, json::parse(R"({"name":"OUTPUT0","datatype":"FP32","shape":[2,4]})"));
  EXPECT_EQ(read_back<float>(*mem, 96, 8), x);
  req["outputs"][0]["parameters"]["shared_memory_offset"] = 100;  // 100 + 32 > 128
  r = cli.Post("/v2/models/ident/infer", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("OUTPUT0"), std::string::npos) << r->body;

  reg["raw_handle"]["b64"] = "not base64 !!";
  r = cli.Post("/v2/cudasharedmemory/region/h1/register", reg.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  r = cli.Post("/v2/cudasharedmemory/region/h1/register", R"({"byte_size": 8})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  r = cli.Post("/v2/cudasharedmemory/unregister", "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = cli.Get("/v2/cudasharedmemory/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body), json::array());
}

TEST_F(CudaShmServer, UnregisteredWhileInFlightTheAnswerStillLands) {
  auto stub = stub_for(*server_);
  auto mem = device_memory(64);
  ASSERT_TRUE(register_region(*stub, "late", *mem, 64).ok());
  inference::ModelInferRequest r = fp32_request("slow", {42.f}, 1, 1);  // runs 40 ms
  set_shm(*r.add_outputs()->mutable_parameters(), "late", 4, 8);
  r.mutable_outputs(0)->set_name("OUTPUT0");
  grpc::Status st;
  std::thread t([&] {
    inference::ModelInferResponse resp;
    st = stub->ModelInfer(ctx().get(), r, &resp);
  });
  ASSERT_TRUE(wait_pending(*server_, "slow"));
  ASSERT_TRUE(unregister_region(*stub, "late").ok());
  t.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(read_back<float>(*mem, 8, 1)[0], 42.f);
}

}  // namespace
