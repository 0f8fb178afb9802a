// Issue 14: the places where `quiver serve` answered differently from NVIDIA Triton, each on the
// real binary and spoken on the wire the way the Triton client that broke speaks it: tritonclient's
// asyncio HTTP client (aiohttp's request headers, Accept-Encoding on every call), Triton's C++
// HTTP client as perf_analyzer uses it (shared-memory outputs), perf_analyzer's statistics
// windows, Triton's model-control examples (load with a config and model files), and the error
// texts and server name Triton's clients and examples check.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <absl/strings/escaping.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "grpc_service.grpc.pb.h"
#include "quiver/core/util.hpp"
#include "quiver/forest/csv.hpp"
#include "serve/serve_fixtures.hpp"

namespace fs = std::filesystem;
using namespace quiver::test;
using nlohmann::json;

namespace {

// One HTTP/1.1 exchange on a fresh loopback connection, the request bytes exactly as given.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

RawResponse raw_http(int port, const std::string& request) {
  RawResponse r;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    throw std::runtime_error("connect failed");
  }
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string in;
  size_t head_end = std::string::npos, want = std::string::npos;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
      std::string head = in.substr(0, head_end);
      r.status = std::stoi(head.substr(head.find(' ') + 1, 3));
      size_t pos = head.find("\r\n");
      while (pos != std::string::npos && pos < head.size()) {
        const size_t next = head.find("\r\n", pos + 2);
        const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string k = line.substr(0, colon), v = line.substr(colon + 1);
          for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          while (!v.empty() && v.front() == ' ') v.erase(0, 1);
          r.headers[k] = v;
        }
        pos = next;
      }
      want = head_end + 4 + (r.headers.count("content-length") ? std::stoull(r.headers["content-length"]) : 0);
    }
    if (want != std::string::npos && in.size() >= want) break;
  }
  close(fd);
  if (head_end == std::string::npos) throw std::runtime_error("no HTTP response");
  r.body = in.substr(head_end + 4);
  return r;
}

// What aiohttp (tritonclient.http.aio) puts on every request, in its order.
std::string aio_request(const std::string& method, const std::string& path, int port, const std::string& body = "",
                        const std::string& accept_encoding = "gzip, deflate") {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                  "\r\nAccept: */*\r\nAccept-Encoding: " + accept_encoding +
                  "\r\nUser-Agent: Python/3.11 aiohttp/3.9.1\r\n";
  if (method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\nContent-Type: application/octet-stream\r\n";
  return r + "\r\n" + body;
}

std::string inflate_any(const std::string& z) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 32);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  zs.avail_in = static_cast<uInt>(z.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("not a deflate stream");
  return out;
}

// A model whose metadata, config and statistics are well past the server's 512-byte compression
// threshold (so that compressing them would have happened).
std::string wide_config() {
  std::string in, out;
  for (int i = 0; i < 6; ++i) {
    const std::string n = std::to_string(i);
    in += std::string(i ? ", " : "") + "{ name: \"INPUT_WITH_A_LONG_DESCRIPTIVE_NAME_" + n +
          "\" data_type: TYPE_FP32 dims: [ 64 ] }";
    out += std::string(i ? ", " : "") + "{ name: \"OUTPUT_WITH_A_LONG_DESCRIPTIVE_NAME_" + n +
           "\" data_type: TYPE_FP32 dims: [ 64 ] }";
  }
  return "backend: \"identity\"\nmax_batch_size: 8\ninput [ " + in + " ]\noutput [ " + out + " ]\n";
}

std::string repo_with_wide() {
  std::string root = make_repo();
  write_text(fs::path(root) / "wide/config.pbtxt", wide_config());
  fs::create_directories(fs::path(root) / "wide/1");
  return root;
}

json wide_infer_body() {
  json inputs = json::array();
  for (int i = 0; i < 6; ++i) {
    std::vector<float> v(64);
    for (int k = 0; k < 64; ++k) v[k] = static_cast<float>(i * 1000 + k) + 0.25f;
    inputs.push_back({{"name", "INPUT_WITH_A_LONG_DESCRIPTIVE_NAME_" + std::to_string(i)},
                      {"shape", {1, 64}},
                      {"datatype", "FP32"},
                      {"data", v}});
  }
  return {{"inputs", inputs}};
}

}  // namespace

// (1) tritonclient.http.aio sends "Accept-Encoding: gzip, deflate" on every call and inflates only
// inference responses: metadata, config, statistics, the index and server metadata must come back
// as plain JSON (Triton compresses nothing else); the inference answer is compressed as asked.
TEST(TritonClients, AioHttpClientGetsPlainJsonExceptInferenceResponses) {
  const std::string repo = repo_with_wide();
  ServerProcess s(repo);
  const int port = s.http_port;
  // Something in the statistics first, so that they are long too.
  auto infer = raw_http(port, aio_request("POST", "/v2/models/wide/infer", port, wide_infer_body().dump()));
  ASSERT_EQ(infer.status, 200) << infer.body;
  ASSERT_EQ(infer.headers["content-encoding"], "gzip");
  const json out = json::parse(inflate_any(infer.body));
  ASSERT_EQ(out["outputs"].size(), 6u);
  EXPECT_EQ(out["outputs"][2]["data"][5].get<float>(), 2005.25f);

  const std::vector<std::pair<std::string, std::string>> plain = {
      {"GET", "/v2/models/wide"},          {"GET", "/v2/models/wide/config"},
      {"GET", "/v2/models/wide/stats"},    {"GET", "/v2/models/stats"},
      {"GET", "/v2/models/wide/versions/1"}, {"GET", "/v2"},
      {"POST", "/v2/repository/index"},    {"GET", "/v2/systemsharedmemory/status"},
      {"GET", "/v2/trace/setting"},        {"GET", "/v2/logging"}};
  for (const auto& [method, path] : plain) {
    SCOPED_TRACE(method + " " + path);
    const auto r = raw_http(port, aio_request(method, path, port, method == "POST" ? "{}" : ""));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers.count("content-encoding"), 0u) << r.headers.at("content-encoding");
    EXPECT_TRUE(json::accept(r.body)) << r.body.substr(0, 40);
  }
  // The long ones really were past the threshold.
  EXPECT_GT(raw_http(port, aio_request("GET", "/v2/models/wide/config", port)).body.size(), 512u);
  EXPECT_GT(raw_http(port, aio_request("GET", "/v2/models/wide", port)).body.size(), 512u);
  // Errors are plain too.
  const auto err = raw_http(port, aio_request("POST", "/v2/models/nope/infer", port, wide_infer_body().dump()));
  EXPECT_EQ(err.status, 404);
  EXPECT_EQ(err.headers.count("content-encoding"), 0u);

  // Accept-Encoding as Triton reads it: the highest q wins, q=0 refuses, identity can win.
  const std::string body = wide_infer_body().dump();
  const std::vector<std::pair<std::string, std::string>> choices = {
      {"deflate", "deflate"}, {"gzip;q=0, deflate", "deflate"}, {"gzip;q=0.5, deflate;q=0.8", "deflate"},
      {"deflate;q=0.2, GZIP", "gzip"}, {"identity", ""}, {"identity, gzip", ""}, {"gzip;q=0", ""},
      {"br", ""}, {"gzip;q=1.5", ""}};
  for (const auto& [accept, want] : choices) {
    SCOPED_TRACE("Accept-Encoding: " + accept);
    const auto r = raw_http(port, aio_request("POST", "/v2/models/wide/infer", port, body, accept));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.count("content-encoding") ? r.headers.at("content-encoding") : "", want);
    const json j = json::parse(want.empty() ? r.body : inflate_any(r.body));
    EXPECT_EQ(j["outputs"][5]["data"][63].get<float>(), 5063.25f);
  }
  s.stop();
  fs::remove_all(repo);
}

// (2) perf_analyzer subtracts two statistics snapshots and refuses the window when the compute
// input / infer / output counts differ. Snapshots taken over both protocols while clients keep
// the model busy (dynamic batching, two instances) must always agree.
TEST(TritonClients, PerfAnalyzerStatisticsWindowsHaveEqualComputeCounts) {
  const std::string repo = make_repo();
  ServerProcess s(repo);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t)
    load.emplace_back([&, t] {
      auto stub = stub_for(s);
      while (!stop.load()) {
        inference::ModelInferResponse resp;
        auto st = stub->ModelInfer(ctx().get(), fp32_request("ident", std::vector<float>(4, float(t)), 1), &resp);
        if (st.ok()) answered++;
      }
    });
  auto stub = stub_for(s);
  std::string bad;
  auto check = [&](uint64_t in, uint64_t infer, uint64_t out, uint64_t success, uint64_t exec, const char* via) {
    if (in != infer || infer != out || out != success)
      bad = std::string(via) + ": compute input " + std::to_string(in) + ", infer " + std::to_string(infer) +
            ", output " + std::to_string(out) + ", success " + std::to_string(success);
    (void)exec;
  };
  int snapshots = 0;
  while (bad.empty() && (snapshots < 400 || answered.load() < 200) && snapshots < 20000) {
    inference::ModelStatisticsRequest q;
    q.set_name("ident");
    inference::ModelStatisticsResponse r;
    ASSERT_TRUE(stub->ModelStatistics(ctx().get(), q, &r).ok());
    const auto& is = r.model_stats(0).inference_stats();
    check(is.compute_input().count(), is.compute_infer().count(), is.compute_output().count(), is.success().count(),
          r.model_stats(0).execution_count(), "gRPC");
    // perf_analyzer -i http reads the same through GET .../stats (keys as Triton names them).
    const auto h = raw_http(s.http_port, "GET /v2/models/ident/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: "
                                         "libcurl-agent/1.0\r\nAccept: */*\r\n\r\n");
    const json j = json::parse(h.body)["model_stats"][0]["inference_stats"];
    check(j["compute_input"]["count"], j["compute_infer"]["count"], j["compute_output"]["count"],
          j["success"]["count"], 0, "HTTP");
    ++snapshots;
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(bad, "") << "after " << snapshots << " snapshots";
  EXPECT_GT(answered.load(), 0);
  s.stop();
  fs::remove_all(repo);
}

// (3) perf_analyzer -i http --shared-memory system: Triton's C++ HTTP client reads any output
// `parameters` as binary-data parameters. Outputs written into a region come back as name,
// datatype and shape only, exactly as Triton answers.
TEST(TritonClients, CppHttpClientSharedMemoryOutputsCarryNoParameters) {
  const std::string repo = make_repo();
  ServerProcess s(repo);
  const std::string key = "/quiver_triton_shm_" + std::to_string(getpid());
  const int fd = shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 128), 0);
  void* p = mmap(nullptr, 128, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  float* f = static_cast<float*>(p);
  for (int i = 0; i < 8; ++i) f[i] = 3.5f + static_cast<float>(i);
  const int port = s.http_port;
  auto curl_post = [&](const std::string& path, const std::string& body, const std::string& extra = "") {
    return raw_http(port, "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nUser-Agent: libcurl-agent/1.0\r\nAccept: */*\r\n" + extra +
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  for (const char* region : {"input_data", "output_data"}) {
    const json reg = {{"key", key}, {"offset", std::string(region) == "input_data" ? 0 : 64}, {"byte_size", 64}};
    ASSERT_EQ(curl_post(std::string("/v2/systemsharedmemory/region/") + region + "/register", reg.dump(),
                        "Content-Type: application/x-www-form-urlencoded\r\n")
                  .status,
              200);
  }
  // What InferenceServerHttpClient::PreRunProcessing sends: the JSON header, its length in
  // Inference-Header-Content-Length, "Expect:" and octet-stream; nothing follows it (all in shm).
  const json req = {
      {"inputs", {{{"name", "INPUT0"}, {"shape", {2, 4}}, {"datatype", "FP32"},
                   {"parameters", {{"shared_memory_region", "input_data"}, {"shared_memory_byte_size", 32}}}}}},
      {"outputs", {{{"name", "OUTPUT0"},
                    {"parameters", {{"shared_memory_region", "output_data"}, {"shared_memory_byte_size", 32},
                                    {"shared_memory_offset", 16}}}}}}};
  const std::string head = req.dump();
  const auto r = curl_post("/v2/models/ident/infer", head,
                           "Inference-Header-Content-Length: " + std::to_string(head.size()) +
                               "\r\nContent-Type: application/octet-stream\r\n");
  ASSERT_EQ(r.status, 200) << r.body;
  const json resp = json::parse(r.body);
  ASSERT_EQ(resp["outputs"].size(), 1u);
  EXPECT_EQ(resp["outputs"][0], json::parse(R"({"name":"OUTPUT0","datatype":"FP32","shape":[2,4]})"));
  EXPECT_EQ(resp["model_name"], "ident");
  for (int i = 0; i < 8; ++i) EXPECT_EQ(f[16 + 4 + i], 3.5f + static_cast<float>(i)) << i;  // region at 64, offset 16
  munmap(p, 128);
  close(fd);
  shm_unlink(key.c_str());
  s.stop();
  fs::remove_all(repo);
}

// (4) Triton's wording first, Quiver's context after it: unknown models, failed loads, and a
// model that failed to load, over both protocols.
TEST(TritonClients, ErrorTextsStartWithTritonsWording) {
  const std::string repo = make_repo();
  write_text(fs::path(repo) / "broken/config.pbtxt", "backend: \"identity\"\nmax_batch_size: oops\n");
  fs::create_directories(fs::path(repo) / "broken/1");
  ServerProcess s(repo, {"--model-control-mode", "explicit", "--load-model", "ident"});
  auto stub = stub_for(s);
  auto starts = [](const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0 ? ::testing::AssertionSuccess()
                                      : ::testing::AssertionFailure() << "'" << text << "' does not start with '"
                                                                      << prefix << "'";
  };
  {
    inference::ModelInferResponse resp;
    auto st = stub->ModelInfer(ctx().get(), fp32_request("nope", {1, 2, 3, 4}, 1), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_TRUE(starts(st.error_message(), "Request for unknown model: 'nope' is not found"));
    EXPECT_NE(st.error_message().find("model 'nope'"), std::string::npos) << st.error_message();  // Quiver's context
    inference::ModelMetadataRequest mq;
    mq.set_name("nope");
    inference::ModelMetadataResponse mr;
    EXPECT_TRUE(starts(stub->ModelMetadata(ctx().get(), mq, &mr).error_message(), "Request for unknown model"));
    auto v = fp32_request("ident", {1, 2, 3, 4}, 1);
    v.set_model_version("7");
    st = stub->ModelInfer(ctx().get(), v, &resp);
    EXPECT_TRUE(starts(st.error_message(), "Request for unknown model: 'ident' version 7 is not found"));
  }
  const int port = s.http_port;
  const auto h = raw_http(port, aio_request("POST", "/v2/models/nope/infer", port, wide_infer_body().dump()));
  EXPECT_EQ(h.status, 404);
  EXPECT_TRUE(starts(json::parse(h.body)["error"], "Request for unknown model: 'nope' is not found"));
  const auto hm = raw_http(port, aio_request("GET", "/v2/models/nope", port));
  EXPECT_TRUE(starts(json::parse(hm.body)["error"], "Request for unknown model"));

  // Loads: the unknown one as Triton words it, the broken one "failed to load 'broken'" with the
  // file and line after it; its index entry and inference errors carry the same reason.
  const auto lu = raw_http(port, aio_request("POST", "/v2/repository/models/nope/load", port, "{}"));
  EXPECT_NE(lu.status, 200);
  EXPECT_TRUE(starts(json::parse(lu.body)["error"], "failed to load 'nope', failed to poll from model repository"));
  inference::RepositoryModelLoadRequest lq;
  lq.set_model_name("broken");
  inference::RepositoryModelLoadResponse lr;
  auto st = stub->RepositoryModelLoad(ctx().get(), lq, &lr);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(starts(st.error_message(), "failed to load 'broken': "));
  EXPECT_NE(st.error_message().find("config.pbtxt"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("line 2"), std::string::npos) << st.error_message();
  inference::RepositoryIndexResponse idx;
  ASSERT_TRUE(stub->RepositoryIndex(ctx().get(), {}, &idx).ok());
  bool seen = false;
  for (const auto& m : idx.models())
    if (m.name() == "broken") {
      seen = true;
      EXPECT_EQ(m.state(), "UNAVAILABLE");
      EXPECT_TRUE(starts(m.reason(), "failed to load 'broken': "));
    }
  EXPECT_TRUE(seen);
  inference::ModelInferResponse resp;
  st = stub->ModelInfer(ctx().get(), fp32_request("broken", {1, 2, 3, 4}, 1), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(starts(st.error_message(), "Request for unknown model: 'broken' has no available versions: failed to load 'broken'"));
  s.stop();
  fs::remove_all(repo);
}

// (5) A binary FIL classifier with predict_proba declared with output dims [2] (as Triton's FIL
// backend's own test configs do) answers [1 - p, p]; [1] keeps p. And one bad model does not stop
// the others with --exit-on-error=false: it is UNAVAILABLE with its load error in the index.
TEST(TritonClients, FilBinaryProbaPairAndExitOnErrorFalse) {
  const fs::path forest = fs::path(QUIVER_SHARED_DIR) / "models/forest/xgboost";
  const fs::path audit = forest / "xgb17/BinaryLogisticAudit17.json";
  if (!fs::exists(audit)) GTEST_SKIP() << "shared models not present";
  const std::string repo = make_temp_dir("triton-fil");
  auto fil = [&](const std::string& name, int dims) {
    fs::create_directories(fs::path(repo) / name / "1");
    fs::copy_file(audit, fs::path(repo) / name / "1/xgboost.json");
    write_text(fs::path(repo) / name / "config.pbtxt",
               "backend: \"fil\"\nmax_batch_size: 1024\n"
               "input [ { name: \"input__0\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
               "output [ { name: \"output__0\" data_type: TYPE_FP32 dims: [ " + std::to_string(dims) + " ] } ]\n"
               "instance_group [{ kind: KIND_CPU }]\n"
               "parameters [ { key: \"model_type\" value: { string_value: \"xgboost_json\" } },"
               " { key: \"output_class\" value: { string_value: \"true\" } },"
               " { key: \"predict_proba\" value: { string_value: \"true\" } } ]\n");
  };
  fil("audit_pair", 2);
  fil("audit_p", 1);
  fil("audit_bad", 3);  // a binary model has no third column: refused at load
  // Default (Triton's --exit-on-error=true): the bad model stops the start, naming it.
  try {
    ServerProcess bad(repo, {}, 20000);
    ADD_FAILURE() << "started with a model that cannot load";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("failed to load 'audit_bad'"), std::string::npos) << e.what();
  }
  ServerProcess s(repo, {"--exit-on-error=false"});
  auto stub = stub_for(s);
  inference::RepositoryIndexResponse idx;
  ASSERT_TRUE(stub->RepositoryIndex(ctx().get(), {}, &idx).ok());
  std::map<std::string, inference::RepositoryIndexResponse::ModelIndex> by_name;
  for (const auto& m : idx.models()) by_name[m.name()] = m;
  EXPECT_EQ(by_name["audit_pair"].state(), "READY");
  EXPECT_EQ(by_name["audit_p"].state(), "READY");
  EXPECT_EQ(by_name["audit_bad"].state(), "UNAVAILABLE");
  EXPECT_EQ(by_name["audit_bad"].reason().rfind("failed to load 'audit_bad': ", 0), 0u) << by_name["audit_bad"].reason();
  EXPECT_NE(by_name["audit_bad"].reason().find("output__0"), std::string::npos) << by_name["audit_bad"].reason();

  auto t = quiver::forest::parse_csv(quiver::read_file((forest / "xgb17/data/Audit.csv").string()), 1, "Audit.csv");
  t.rows.resize(std::min<size_t>(64, t.rows.size()));
  const std::vector<float> x =
      quiver::forest::csv_to_features(t, 4, {"Age", "Income", "Deductions", "Hours"}, nullptr, "Audit.csv");
  const int64_t rows = static_cast<int64_t>(x.size() / 4);
  auto run = [&](const std::string& model) {
    inference::ModelInferRequest r;
    r.set_model_name(model);
    auto* in = r.add_inputs();
    in->set_name("input__0");
    in->set_datatype("FP32");
    in->add_shape(rows);
    in->add_shape(4);
    r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
    inference::ModelInferResponse resp;
    auto st = stub->ModelInfer(ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.outputs(0).shape(1), model == "audit_pair" ? 2 : 1);
    return as_floats(resp.raw_output_contents(0));
  };
  const std::vector<float> p = run("audit_p"), pair = run("audit_pair");
  ASSERT_EQ(p.size(), static_cast<size_t>(rows));
  ASSERT_EQ(pair.size(), static_cast<size_t>(2 * rows));
  auto expected = quiver::forest::parse_csv(
      quiver::read_file((forest / "xgb17/expected/BinaryLogisticAudit17.csv").string()), 1, "expected");
  const size_t col = std::find(expected.header.begin(), expected.header.end(), "prediction") - expected.header.begin();
  for (int64_t r = 0; r < rows; ++r) {
    const float ref = std::stof(expected.rows.at(static_cast<size_t>(r)).at(col));
    EXPECT_NEAR(p[r], ref, 1e-6) << r;
    EXPECT_EQ(pair[2 * r + 1], p[r]) << r;
    EXPECT_EQ(pair[2 * r], 1.0f - p[r]) << r;
  }
  inference::ModelInferResponse resp;
  auto bad = fp32_request("audit_bad", std::vector<float>(4, 1.f), 1);
  auto st = stub->ModelInfer(ctx().get(), bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("failed to load 'audit_bad'"), std::string::npos) << st.error_message();
  s.stop();
  fs::remove_all(repo);
}

// (6) Triton's model-control example: load with a JSON config and the model file as
// "file:<version>/<name>" (base64 over HTTP, bytes over gRPC); the override directory replaces
// the model's; names that would leave it are refused before anything is written.
TEST(TritonClients, LoadWithModelFileOverrides) {
  const fs::path onnx = fs::path(QUIVER_SHARED_DIR) / "models/hep/hls4ml_three_layer/model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << "shared models not present";
  const std::string repo = make_repo();
  ServerProcess s(repo, {"--model-control-mode", "explicit"});
  const int port = s.http_port;
  const std::string model_bytes = quiver::read_file(onnx.string());
  // hls4ml's model has a fixed first dimension: no batching (max_batch_size 0).
  const std::string config = R"({"name":"mlp","backend":"onnxruntime","max_batch_size":0})";
  // tritonclient.http: load_model("mlp", config=..., files={"file:1/model.onnx": bytes}).
  const json load = {{"parameters", {{"config", config}, {"file:1/model.onnx", absl::Base64Escape(model_bytes)}}}};
  auto r = raw_http(port, aio_request("POST", "/v2/repository/models/mlp/load", port, load.dump()));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(fs::exists(fs::path(repo) / "mlp")) << "the override went into the repository";
  auto stub = stub_for(s);
  inference::ModelMetadataRequest mq;
  mq.set_name("mlp");
  inference::ModelMetadataResponse meta;
  ASSERT_TRUE(stub->ModelMetadata(ctx().get(), mq, &meta).ok());
  ASSERT_EQ(meta.inputs_size(), 1);
  ASSERT_EQ(meta.inputs(0).datatype(), "FP32");
  inference::ModelInferRequest q;
  q.set_model_name("mlp");
  auto* in = q.add_inputs();
  in->set_name(meta.inputs(0).name());
  in->set_datatype("FP32");
  int64_t n = 1;
  for (int64_t d : meta.inputs(0).shape()) {
    in->add_shape(std::max<int64_t>(d, 1));
    n *= std::max<int64_t>(d, 1);
  }
  q.add_raw_input_contents(std::string(static_cast<size_t>(n) * 4, '\0'));
  inference::ModelInferResponse resp;
  auto st = stub->ModelInfer(ctx().get(), q, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();

  // tritonclient.grpc: the same with bytes_param, as version 2 under another name.
  inference::RepositoryModelLoadRequest lq;
  lq.set_model_name("mlp2");
  (*lq.mutable_parameters())["config"].set_string_param(R"({"name":"mlp2","backend":"onnxruntime","max_batch_size":0})");
  (*lq.mutable_parameters())["file:2/model.onnx"].set_bytes_param(model_bytes);
  inference::RepositoryModelLoadResponse lr;
  st = stub->RepositoryModelLoad(ctx().get(), lq, &lr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  q.set_model_name("mlp2");
  st = stub->ModelInfer(ctx().get(), q, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.model_version(), "2");

  // Refused: names that leave the override directory, no version, hidden names, no config, a
  // string where gRPC needs bytes.
  const std::string outside = (fs::path(repo).parent_path() / ("escaped-" + std::to_string(getpid()))).string();
  for (const std::string key : {"file:1/../../escaped", "file:../escaped", "file:1/a/../../b", "file:x/model.onnx",
                                "file:1/.hidden", "file:1/", "file:/etc/passwd", "file:1//model.onnx",
                                "file:1/a\\..\\b"}) {
    SCOPED_TRACE(key);
    const json bad = {{"parameters", {{"config", config}, {key, absl::Base64Escape("x")}}}};
    auto b = raw_http(port, aio_request("POST", "/v2/repository/models/mlp/load", port, bad.dump()));
    EXPECT_EQ(b.status, 400) << b.body;
    EXPECT_EQ(json::parse(b.body)["error"].get<std::string>().rfind("failed to load 'mlp': file override", 0), 0u)
        << b.body;
  }
  EXPECT_FALSE(fs::exists(outside));
  const json no_config = {{"parameters", {{"file:1/model.onnx", absl::Base64Escape(model_bytes)}}}};
  auto nc = raw_http(port, aio_request("POST", "/v2/repository/models/mlp/load", port, no_config.dump()));
  EXPECT_EQ(nc.status, 400);
  EXPECT_NE(nc.body.find("'config'"), std::string::npos) << nc.body;
  const json not_b64 = {{"parameters", {{"config", config}, {"file:1/model.onnx", "not base64 !!"}}}};
  EXPECT_EQ(raw_http(port, aio_request("POST", "/v2/repository/models/mlp/load", port, not_b64.dump())).status, 400);
  (*lq.mutable_parameters())["file:2/model.onnx"].set_string_param("text");
  EXPECT_EQ(stub->RepositoryModelLoad(ctx().get(), lq, &lr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The model that loaded still serves after all the refusals.
  q.set_model_name("mlp");
  EXPECT_TRUE(stub->ModelInfer(ctx().get(), q, &resp).ok());
  // A plain load goes back to the repository (which has no "mlp"): unavailable again.
  r = raw_http(port, aio_request("POST", "/v2/repository/models/mlp/load", port, "{}"));
  EXPECT_NE(r.status, 200);
  s.stop();
  fs::remove_all(repo);
}

// (7) --server-name: Triton's examples check ServerMetadata's name.
TEST(TritonClients, ServerNameOption) {
  const std::string repo = make_repo();
  {
    ServerProcess s(repo);
    auto stub = stub_for(s);
    inference::ServerMetadataResponse m;
    ASSERT_TRUE(stub->ServerMetadata(ctx().get(), {}, &m).ok());
    EXPECT_EQ(m.name(), "quiver");
  }
  ServerProcess s(repo, {"--server-name", "triton"});
  auto stub = stub_for(s);
  inference::ServerMetadataResponse m;
  ASSERT_TRUE(stub->ServerMetadata(ctx().get(), {}, &m).ok());
  EXPECT_EQ(m.name(), "triton");
  const auto h = raw_http(s.http_port, aio_request("GET", "/v2", s.http_port));
  EXPECT_EQ(json::parse(h.body)["name"], "triton");
  s.stop();
  fs::remove_all(repo);
}
