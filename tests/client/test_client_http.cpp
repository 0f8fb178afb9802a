// The KServe v2 HTTP/REST client and `quiver perf -i http` against a real `quiver serve` process on
// loopback (free ports): binary and JSON tensors, statistics, clear errors, perf CSV and report.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "support/server_process.hpp"
#include "quiver/client/http.hpp"
#include "quiver/client/shm.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
using quiver::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

const std::string kQuiver = QUIVER_BINARY_DIR "/src/cli/quiver";

struct Repo : quiver::testing::TempRepository {
  Repo() : TempRepository("quiver_client_http_repo") {
    add("identity", quiver::testing::identity_config("identity", 64));
    add("ints", "name: \"ints\"\nbackend: \"identity\"\nmax_batch_size: 0\n"
                "input [ { name: \"IN\" data_type: TYPE_INT64 dims: [ 2, 3 ] } ]\n"
                "output [ { name: \"OUT\" data_type: TYPE_INT64 dims: [ 2, 3 ] } ]\n");
  }
};

std::unique_ptr<ServerProcess> serve(const Repo& repo) {
  return std::make_unique<ServerProcess>(
      kQuiver, std::vector<std::string>{"serve", "--model-repository", repo.dir.string(), "--grpc-port", "0",
                                        "--http-port", "0", "--metrics-port", "-1", "--http-threads", "4"});
}

Tensor rows(float tag, int64_t n) {
  Tensor t = Tensor::empty(DType::F32, {n, 4});
  for (int64_t i = 0; i < n * 4; ++i) t.data<float>()[i] = tag + 0.25f * static_cast<float>(i);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A loopback port nothing listens on (bound, then closed).
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs a shell command with a time limit; returns the exit status and the output.
std::pair<int, std::string> run(const std::string& cmd, const fs::path& log, int limit_s = 60) {
  int st = std::system(("timeout " + std::to_string(limit_s) + " " + cmd + " > " + log.string() + " 2>&1").c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_file(log.string())};
}

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, ',')) f.push_back(x);
    out.push_back(f);
  }
  return out;
}

}  // namespace

TEST(ClientHttp, InferMetadataStatisticsAndErrors) {
  Repo repo;
  auto s = serve(repo);
  ASSERT_NE(s->http(), "off");
  ASSERT_FALSE(s->http().empty());
  HttpClient c(s->http(), HttpOptions{.timeout_ns = 10'000'000'000});  // bounded, never a hang
  ASSERT_TRUE(c.server_ready());
  ModelMeta m = c.model_metadata("identity");
  EXPECT_EQ(m.info.max_batch, 64);
  ASSERT_EQ(m.info.inputs.size(), 1u);
  EXPECT_EQ(m.info.inputs[0].name, "INPUT0");
  EXPECT_EQ(m.info.inputs[0].dtype, DType::F32);
  EXPECT_EQ(m.info.outputs.at(0).name, "OUTPUT0");
  EXPECT_FALSE(m.info.sha256.empty());

  // Binary tensor data, several requests over the one keep-alive connection.
  for (int i = 0; i < 20; ++i) {
    Tensor x = rows(static_cast<float>(i), 1 + i % 5);
    auto r = c.infer("identity", {{"INPUT0", x}}, {.request_id = "r" + std::to_string(i)});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(same(r.output("OUTPUT0"), x)) << i;
    EXPECT_EQ(r.request_id, "r" + std::to_string(i));
    EXPECT_EQ(r.provenance.model, "identity");
    EXPECT_EQ(r.provenance.version, "1");
  }
  // JSON "data" both ways, non-batching model with INT64.
  HttpClient cj(s->http(), HttpOptions{.timeout_ns = 10'000'000'000, .binary_data = false});
  Tensor xi = Tensor::from_vector<int64_t>({1, -2, 3, 1LL << 40, 5, -6}, {2, 3});
  auto ri = cj.infer("ints", {{"IN", xi}});
  ASSERT_TRUE(ri.ok()) << ri.error->what();
  EXPECT_TRUE(same(ri.output("OUT"), xi));
  auto rj = cj.infer("identity", {{"INPUT0", rows(0.5f, 3)}}, {.outputs = {"OUTPUT0"}});
  ASSERT_TRUE(rj.ok()) << rj.error->what();
  EXPECT_TRUE(same(rj.output("OUTPUT0"), rows(0.5f, 3)));
  // gzip request bodies.
  HttpClient cz(s->http(), HttpOptions{.timeout_ns = 10'000'000'000, .gzip = true});
  auto rz = cz.infer("identity", {{"INPUT0", rows(9, 8)}});
  ASSERT_TRUE(rz.ok()) << rz.error->what();
  EXPECT_TRUE(same(rz.output("OUTPUT0"), rows(9, 8)));

  InferenceStats st = c.model_statistics("identity");
  EXPECT_GE(st.success_count, 22u);
  EXPECT_GT(st.compute_infer_ns, 0u);

  // Clear errors.
  auto nf = c.infer("no_such_model", {{"INPUT0", rows(1, 1)}});
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error->code(), ErrorCode::NotFound) << nf.error->what();
  EXPECT_NE(std::string(nf.error->what()).find("no_such_model"), std::string::npos) << nf.error->what();
  auto bad = c.infer("identity", {{"WRONG", rows(1, 1)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error->code(), ErrorCode::InvalidArgument) << bad.error->what();
  EXPECT_NE(std::string(bad.error->what()).find("WRONG"), std::string::npos) << bad.error->what();
  try {
    c.model_metadata("no_such_model");
    ADD_FAILURE() << "metadata of an unknown model";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
  }
  // The connection still works after errors.
  auto again = c.infer("identity", {{"INPUT0", rows(3, 2)}});
  ASSERT_TRUE(again.ok()) << again.error->what();

  // Nobody listening: Unavailable at once, naming the address.
  const std::string dead = "127.0.0.1:" + std::to_string(closed_port());
  HttpClient cd(dead, HttpOptions{.connect_timeout_ns = 500'000'000});
  std::string why;
  EXPECT_FALSE(cd.server_ready(&why));
  EXPECT_NE(why.find(dead), std::string::npos) << why;
  auto t0 = now_ns();
  auto rd = cd.infer("identity", {{"INPUT0", rows(1, 1)}});
  ASSERT_FALSE(rd.ok());
  EXPECT_EQ(rd.error->code(), ErrorCode::Unavailable) << rd.error->what();
  EXPECT_LT(now_ns() - t0, 2'000'000'000);
  EXPECT_THROW(HttpClient("no-port-here"), Error);
}

TEST(ClientHttp, PerfOverHttpCsvReportAndServerSplit) {
  Repo repo;
  auto s = serve(repo);
  fs::path csv = repo.dir / "perf.csv", svg = repo.dir / "perf.svg", log = repo.dir / "perf.log";
  auto [rc, out] = run(kQuiver + " perf -i http -m identity -u " + s->http() +
                           " --concurrency-range 1:2:1 -b 4 -p 300 --max-trials 4 -f " + csv.string() + " --plot " +
                           svg.string(),
                       log);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Concurrency: 1"), std::string::npos) << out;
  EXPECT_NE(out.find("Concurrency: 2"), std::string::npos) << out;
  EXPECT_NE(out.find("Server: queue"), std::string::npos) << "no server time split: " << out;
  // requests == completed, nothing failed.
  size_t p = out.find("Requests: ");
  ASSERT_NE(p, std::string::npos) << out;
  long long req = -1, done = -2, failed = -1;
  ASSERT_EQ(std::sscanf(out.c_str() + p, "Requests: %lld, completed: %lld, failed: %lld", &req, &done, &failed), 3) << out;
  EXPECT_GT(req, 10);
  EXPECT_EQ(req, done) << out;
  EXPECT_EQ(failed, 0) << out;
  EXPECT_NE(out.find(s->http()), std::string::npos) << out;

  auto rows = csv_rows(read_file(csv.string()));
  ASSERT_EQ(rows.size(), 3u) << read_file(csv.string());
  EXPECT_EQ(rows[0][0], "Concurrency");
  EXPECT_EQ(rows[0][1], "Inferences/Second");
  ASSERT_EQ(rows[0].size(), 14u);
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 14u);
    EXPECT_EQ(std::stoi(rows[i][0]), static_cast<int>(i));
    const double infer = std::stod(rows[i][1]), reqs = std::stod(rows[i][2]);
    EXPECT_GT(reqs, 10.0) << "requests/s at concurrency " << i;
    EXPECT_NEAR(infer, 4 * reqs, 1e-4 * infer);  // -b 4 (CSV has 6 significant digits)
    const double avg = std::stod(rows[i][8]), p50 = std::stod(rows[i][9]), p99 = std::stod(rows[i][12]);
    EXPECT_GT(p50, 0);
    EXPECT_GE(p99, p50);
    EXPECT_LT(avg, 1e6) << "average latency above one second";
    EXPECT_GT(std::stod(rows[i][6]), 0) << "server compute infer time missing";
    EXPECT_EQ(rows[i][13], "0") << "errors";
  }
  EXPECT_NE(read_file(svg.string()).find("polyline"), std::string::npos);
}

TEST(ClientHttp, PerfOverHttpClearErrors) {
  Repo repo;
  auto s = serve(repo);
  fs::path log = repo.dir / "perf.log";
  // Wrong model: NotFound naming it, non-zero exit.
  auto [rc1, out1] = run(kQuiver + " perf -i http -m no_such_model -u " + s->http() + " -p 100", log);
  EXPECT_NE(rc1, 0) << out1;
  EXPECT_NE(rc1, 124) << "timed out: " << out1;
  EXPECT_NE(out1.find("no_such_model"), std::string::npos) << out1;
  // Nobody listening: a clear error within the 5 s readiness wait.
  const std::string dead = "127.0.0.1:" + std::to_string(closed_port());
  auto t0 = now_ns();
  auto [rc2, out2] = run(kQuiver + " perf -i http -m identity -u " + dead + " -p 100", log, 30);
  EXPECT_NE(rc2, 0) << out2;
  EXPECT_NE(rc2, 124) << "timed out: " << out2;
  EXPECT_LT(now_ns() - t0, 15'000'000'000);
  EXPECT_NE(out2.find(dead), std::string::npos) << out2;
  EXPECT_NE(out2.find("not ready"), std::string::npos) << out2;
  // The gRPC port given to -i http is not an HTTP server either.
  auto [rc3, out3] = run(kQuiver + " perf -i http -m identity -u " + s->grpc() + " -p 100", log, 30);
  EXPECT_NE(rc3, 0) << out3;
  EXPECT_NE(rc3, 124) << "timed out: " << out3;
  // Options the HTTP path does not have are refused, not ignored.
  auto [rc4, out4] = run(kQuiver + " perf -i http -m identity -u " + s->http() + " --coalesce -p 100", log);
  EXPECT_NE(rc4, 0) << out4;
  EXPECT_NE(out4.find("--coalesce"), std::string::npos) << out4;
  auto [rc5, out5] = run(kQuiver + " perf -i tcp -m identity -u " + s->http(), log);
  EXPECT_NE(rc5, 0) << out5;
  EXPECT_NE(out5.find("grpc or http"), std::string::npos) << out5;
}

TEST(ClientHttp, SharedMemoryInputsAndOutputs) {
  Repo repo;
  auto s = serve(repo);
  HttpClient c(s->http(), HttpOptions{.timeout_ns = 10'000'000'000});
  SystemSharedMemory region("quiver_http_test", 4096);
  // The server gets the first 3072 of the 4096 mapped bytes, so its bounds check can be exercised
  // without the client writing outside its mapping.
  c.register_system_shared_memory(region.name(), region.key(), 0, 3072);
  Tensor x = rows(1.5f, 3);  // 48 bytes in, 48 out
  HttpShmSlot slot{region.name(), region.base(), 1024, 1024, true, {{"OUTPUT0", 48}}};
  auto r = c.infer("identity", {{"INPUT0", x}}, {}, slot);
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_TRUE(r.outputs_in_shared_memory);
  EXPECT_TRUE(same(r.output("OUTPUT0"), x));
  EXPECT_EQ(r.output("OUTPUT0").raw(), static_cast<const void*>(region.base() + 1024 + 64));  // after the input
  auto body = c.infer("identity", {{"INPUT0", x}});
  ASSERT_TRUE(body.ok());
  EXPECT_FALSE(body.outputs_in_shared_memory);
  EXPECT_TRUE(same(body.output("OUTPUT0"), r.output("OUTPUT0")));
  // Inputs only (outputs in the body), and outputs only.
  HttpShmSlot in_only{region.name(), region.base(), 0, 1024, true, {}};
  auto ri = c.infer("identity", {{"INPUT0", rows(2, 5)}}, {}, in_only);
  ASSERT_TRUE(ri.ok()) << ri.error->what();
  EXPECT_FALSE(ri.outputs_in_shared_memory);
  EXPECT_TRUE(same(ri.output("OUTPUT0"), rows(2, 5)));
  HttpShmSlot out_only{region.name(), region.base(), 2048, 1024, false, {{"OUTPUT0", 80}}};
  auto ro = c.infer("identity", {{"INPUT0", rows(3, 5)}}, {}, out_only);
  ASSERT_TRUE(ro.ok()) << ro.error->what();
  EXPECT_TRUE(ro.outputs_in_shared_memory);
  EXPECT_TRUE(same(ro.output("OUTPUT0"), rows(3, 5)));
  // Too little output space: the server's InvalidArgument names the output.
  HttpShmSlot small{region.name(), region.base(), 1024, 1024, true, {{"OUTPUT0", 16}}};
  auto rs = c.infer("identity", {{"INPUT0", x}}, {}, small);
  ASSERT_FALSE(rs.ok());
  EXPECT_EQ(rs.error->code(), ErrorCode::InvalidArgument) << rs.error->what();
  EXPECT_NE(std::string(rs.error->what()).find("OUTPUT0"), std::string::npos) << rs.error->what();
  EXPECT_NE(std::string(rs.error->what()).find("too small"), std::string::npos) << rs.error->what();
  // A slot too small for the inputs is refused before sending.
  HttpShmSlot tiny{region.name(), region.base(), 0, 32, true, {}};
  auto rt = c.infer("identity", {{"INPUT0", x}}, {}, tiny);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.error->code(), ErrorCode::InvalidArgument) << rt.error->what();
  EXPECT_NE(std::string(rt.error->what()).find("INPUT0"), std::string::npos) << rt.error->what();
  // Past the registered 3072 bytes: the server's bounds check.
  HttpShmSlot past{region.name(), region.base(), 3040, 1024, true, {}};
  auto rp = c.infer("identity", {{"INPUT0", x}}, {}, past);
  ASSERT_FALSE(rp.ok());
  EXPECT_EQ(rp.error->code(), ErrorCode::InvalidArgument) << rp.error->what();
  EXPECT_NE(std::string(rp.error->what()).find("exceeds"), std::string::npos) << rp.error->what();
  // Unregistered: the server no longer knows the region.
  c.unregister_system_shared_memory(region.name());
  auto ru = c.infer("identity", {{"INPUT0", x}}, {}, slot);
  ASSERT_FALSE(ru.ok());
  EXPECT_NE(std::string(ru.error->what()).find(region.name()), std::string::npos) << ru.error->what();
  EXPECT_THROW(c.unregister_system_shared_memory(region.name()), Error);

  // quiver perf -i http --shared-memory system.
  fs::path log = repo.dir / "perf_shm.log";
  auto [rc, out] = run(kQuiver + " perf -i http -m identity -u " + s->http() +
                           " --shared-memory system --concurrency-range 1:2:1 -b 8 -p 200 --max-trials 3",
                       log);
  ASSERT_EQ(rc, 0) << out;
  size_t p = out.find("Requests: ");
  ASSERT_NE(p, std::string::npos) << out;
  long long req = -1, done = -2, failed = -1;
  ASSERT_EQ(std::sscanf(out.c_str() + p, "Requests: %lld, completed: %lld, failed: %lld", &req, &done, &failed), 3) << out;
  EXPECT_GT(req, 10);
  EXPECT_EQ(req, done);
  EXPECT_EQ(failed, 0);
}
