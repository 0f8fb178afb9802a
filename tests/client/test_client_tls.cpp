// TLS and mutual TLS between the client and a real `quiver serve` (gRPC): certificates made at test
// time with the openssl CLI (a CA, a server certificate for 127.0.0.1/localhost, a client
// certificate, and an unrelated CA). Right CA: works; plaintext or wrong CA: a clear error, quickly;
// mTLS: no client certificate is refused, the CA-signed one is accepted; quiver perf --ssl*.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "support/server_process.hpp"
#include "quiver/client/client.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
using quiver::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

const std::string kQuiver = QUIVER_BINARY_DIR "/src/cli/quiver";

int sh(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A model repository and a PKI in one temp folder, made once for the suite.
struct Env {
  fs::path dir, repo, pki;
  bool ok = false;
  std::string why;
  Env() {
    dir = fs::temp_directory_path() / ("quiver_client_tls_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    repo = dir / "repo";
    pki = dir / "pki";
    quiver::testing::add_repo_model(repo, "identity", quiver::testing::identity_config("identity", 8));
    fs::create_directories(pki);
    if (sh("command -v openssl > /dev/null 2>&1") != 0) {
      why = "the openssl command is not installed";
      return;
    }
    write_file((pki / "server.ext").string(),
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    write_file((pki / "client.ext").string(), "extendedKeyUsage=clientAuth\n");
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string p = pki.string() + "/";
    const std::string script =
        "set -e; cd " + pki.string() + ";" +
        "openssl req -x509" + key + " -keyout ca.key -out ca.crt -days 2 -subj '/CN=Quiver Test CA';" +
        "openssl req -x509" + key + " -keyout other_ca.key -out other_ca.crt -days 2 -subj '/CN=Other CA';" +
        "openssl req" + key + " -keyout server.key -out server.csr -subj '/CN=localhost';" +
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext;" +
        "openssl req" + key + " -keyout client.key -out client.csr -subj '/CN=quiver-client';" +
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext;" +
        "openssl req" + key + " -keyout rogue.key -out rogue.csr -subj '/CN=rogue-client';" +
        "openssl x509 -req -in rogue.csr -CA other_ca.crt -CAkey other_ca.key -CAcreateserial -out rogue.crt -days 2 -extfile client.ext";
    if (sh("(" + script + ") > " + p + "openssl.log 2>&1") != 0) {
      why = "openssl failed: " + read_file(p + "openssl.log");
      return;
    }
    ok = true;
  }
  ~Env() { fs::remove_all(dir); }
  std::string f(const std::string& name) const { return (pki / name).string(); }
};

Env& env() {
  static Env e;
  return e;
}

std::unique_ptr<ServerProcess> serve_tls(bool mutual) {
  Env& e = env();
  std::vector<std::string> args{"serve", "--model-repository", e.repo.string(), "--grpc-port", "0",
                                "--http-port", "-1", "--metrics-port", "-1",
                                "--grpc-server-cert", e.f("server.crt"), "--grpc-server-key", e.f("server.key")};
  if (mutual) {
    args.insert(args.end(), {"--grpc-root-cert", e.f("ca.crt"), "--grpc-use-ssl-mutual"});
  }
  return std::make_unique<ServerProcess>(kQuiver, args);
}

ClientOptions options(const std::string& server) {
  ClientOptions o;
  o.discovery.endpoints = {server};
  o.health_interval_ns = 50'000'000;
  o.probe_timeout_ns = 1'000'000'000;
  o.default_timeout_ns = 5'000'000'000;
  return o;
}

Tensor row(float tag) {
  Tensor t = Tensor::empty(DType::F32, {2, 4});
  for (int i = 0; i < 8; ++i) t.data<float>()[i] = tag + static_cast<float>(i);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// One inference; the error (if any) as text; also checks it came back within `limit_ms`.
std::optional<std::string> try_infer(const ClientOptions& o, int64_t limit_ms = 8000) {
  const int64_t t0 = now_ns();
  Client c(o);
  c.wait_for_serving(1, 1'500'000'000);
  Tensor x = row(3);
  auto r = c.infer("identity", {{"INPUT0", x}});
  const int64_t ms = (now_ns() - t0) / 1'000'000;
  EXPECT_LT(ms, limit_ms) << "took too long";
  if (r.ok()) {
    EXPECT_TRUE(same(r.output("OUTPUT0"), x));
    return std::nullopt;
  }
  return std::string(r.error->what());
}

#define REQUIRE_PKI()                                        \
  do {                                                       \
    if (!env().ok) GTEST_SKIP() << env().why;                \
  } while (0)

}  // namespace

TEST(ClientTls, RightCaWorksPlaintextAndWrongCaFailClearly) {
  REQUIRE_PKI();
  auto s = serve_tls(false);
  ClientOptions o = options(s->grpc());
  o.tls.enabled = true;
  o.tls.root_certs_file = env().f("ca.crt");
  auto good = try_infer(o);
  EXPECT_FALSE(good) << *good;
  // By name: the certificate is for localhost too.
  ClientOptions on = options("localhost:" + std::to_string(s->port()));
  on.tls = o.tls;
  auto by_name = try_infer(on);
  EXPECT_FALSE(by_name) << *by_name;

  ClientOptions plain = options(s->grpc());
  auto e1 = try_infer(plain);
  ASSERT_TRUE(e1) << "plaintext client talked to a TLS server";
  EXPECT_NE(e1->find(s->grpc()), std::string::npos) << *e1;
  EXPECT_NE(e1->find("unavailable"), std::string::npos) << *e1;

  ClientOptions wrong = o;
  wrong.tls.root_certs_file = env().f("other_ca.crt");
  auto e2 = try_infer(wrong);
  ASSERT_TRUE(e2) << "a client trusting another CA accepted the server";
  EXPECT_NE(e2->find(s->grpc()), std::string::npos) << *e2;
  EXPECT_NE(e2->find("certificate verify failed"), std::string::npos) << *e2;
  EXPECT_NE(e1->find("TLS"), std::string::npos) << "no hint that the server may use TLS: " << *e1;

  // Server name override: the certificate does not name "quiver.example", so the check fails.
  ClientOptions misnamed = o;
  misnamed.tls.server_name_override = "quiver.example";
  EXPECT_TRUE(try_infer(misnamed));
  // A TLS client against a plaintext server.
  auto plain_server = std::make_unique<ServerProcess>(
      kQuiver, std::vector<std::string>{"serve", "--model-repository", env().repo.string(), "--grpc-port", "0",
                                        "--http-port", "-1", "--metrics-port", "-1"});
  ClientOptions tls_to_plain = o;
  tls_to_plain.discovery.endpoints = {plain_server->grpc()};
  auto e3 = try_infer(tls_to_plain);
  ASSERT_TRUE(e3) << "TLS client talked to a plaintext server";
  EXPECT_NE(e3->find(plain_server->grpc()), std::string::npos) << *e3;
  EXPECT_NE(e3->find("not seem to use TLS"), std::string::npos) << *e3;
  // A missing CA file is a clear error at construction.
  ClientOptions missing = o;
  missing.tls.root_certs_file = (env().pki / "nope.crt").string();
  try {
    Client c(missing);
    auto r = c.infer("identity", {{"INPUT0", row(1)}});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(std::string(r.error->what()).find("nope.crt"), std::string::npos) << r.error->what();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.crt"), std::string::npos) << e.what();
  }
}

TEST(ClientTls, MutualTlsNeedsAClientCertificateFromTheCa) {
  REQUIRE_PKI();
  auto s = serve_tls(true);
  ClientOptions o = options(s->grpc());
  o.tls.enabled = true;
  o.tls.root_certs_file = env().f("ca.crt");
  auto no_cert = try_infer(o);
  ASSERT_TRUE(no_cert) << "an mTLS server accepted a client without a certificate";
  EXPECT_NE(no_cert->find(s->grpc()), std::string::npos) << *no_cert;

  ClientOptions rogue = o;
  rogue.tls.client_cert_file = env().f("rogue.crt");
  rogue.tls.client_key_file = env().f("rogue.key");
  EXPECT_TRUE(try_infer(rogue)) << "an mTLS server accepted a certificate from another CA";

  ClientOptions with = o;
  with.tls.client_cert_file = env().f("client.crt");
  with.tls.client_key_file = env().f("client.key");
  auto good = try_infer(with);
  EXPECT_FALSE(good) << *good;

  // quiver perf over mTLS, with the server time split (statistics over the same credentials).
  fs::path log = env().dir / "perf.log";
  const std::string perf = kQuiver + " perf -m identity -u " + s->grpc() + " -p 200 --max-trials 3 --ssl" +
                           " --ssl-root-certs " + env().f("ca.crt");
  int rc = sh("timeout 60 " + perf + " --ssl-cert " + env().f("client.crt") + " --ssl-key " + env().f("client.key") +
              " > " + log.string() + " 2>&1");
  std::string out = read_file(log.string());
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Server: queue"), std::string::npos) << out;
  EXPECT_NE(out.find("failed: 0"), std::string::npos) << out;
  // Without the client certificate: a clear error and a non-zero exit, not a hang.
  rc = sh("timeout 60 " + perf + " > " + log.string() + " 2>&1");
  out = read_file(log.string());
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "timed out: " << out;
  EXPECT_NE(out.find(s->grpc()), std::string::npos) << out;
}
