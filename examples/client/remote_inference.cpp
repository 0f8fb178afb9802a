// Example: a physics module's view of the Quiver inference client.
//
//   remote_inference MODEL INPUT_NAME HOST:PORT [HOST:PORT ...] [--fallback-repository DIR]
//
// Shows the synchronous call, the asynchronous call with a completion callback (what an event
// framework uses to park an event and resume it, ExternalWork style), futures, cross-event
// coalescing with BatchingClient, provenance, and the client as a plain quiver::Model.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "quiver/client/client.hpp"

using namespace quiver;
using namespace quiver::client;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL INPUT_NAME HOST:PORT [HOST:PORT ...] [--fallback-repository DIR]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], input = argv[2];
  ClientOptions opt;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--fallback-repository" && i + 1 < argc) {
      opt.fallback = FallbackMode::OnFailure;  // run locally when no server is healthy
      opt.fallback_repository = argv[++i];
    } else {
      opt.discovery.endpoints.push_back(a);  // or opt.discovery.servers_file / dns_names
    }
  }
  opt.default_timeout_ns = 2'000'000'000;  // per-request deadline
  try {
    Client client(opt);
    client.wait_for_serving(1, 2'000'000'000);

    // Metadata and config, fetched once and cached.
    auto meta = client.model_metadata(model);
    std::printf("model %s version %s, max batch %lld, from %s\n", meta->info.name.c_str(), meta->info.version.c_str(),
                static_cast<long long>(meta->info.max_batch), meta->source.c_str());
    std::vector<int64_t> dims;
    for (size_t i = 0; i < meta->info.inputs.at(0).shape.size(); ++i) {
      const Dim& d = meta->info.inputs[0].shape[i];
      dims.push_back(d.is_fixed() ? d.value : 1);
    }
    Tensor x = Tensor::zeros(meta->info.inputs[0].dtype, dims);

    // 1. Synchronous.
    InferResult r = client.infer(model, {{input, x}});
    r.throw_if_error();
    std::printf("sync: %zu output(s) from %s (model %s v%s, sha256 %s, %d attempt(s))\n", r.outputs.size(),
                r.provenance.server.c_str(), r.provenance.model.c_str(), r.provenance.version.c_str(),
                r.provenance.sha256.empty() ? "-" : r.provenance.sha256.substr(0, 12).c_str(), r.provenance.attempts);

    // 2. Asynchronous: returns at once; the callback runs once, on the client's completion thread.
    std::mutex mu;
    std::condition_variable cv;
    int pending = 100, failed = 0;
    for (int i = 0; i < 100; ++i)
      client.infer_async(model, {{input, x}}, {.priority = 1}, [&](InferResult res) {
        std::lock_guard lk(mu);  // an event framework would resume the parked event here
        failed += !res.ok();
        if (--pending == 0) cv.notify_all();
      });
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return pending == 0; });
    }
    std::printf("async: 100 requests, %d failed\n", failed);

    // 3. Futures.
    auto f = client.infer_future(model, {{input, x}});
    std::printf("future: %s\n", f.get().ok() ? "ok" : "error");

    // 4. Coalescing: concurrent small requests merged into batched RPCs (models with max batch > 0).
    if (meta->info.max_batch > 0) {
      BatchingClient batching(client);
      std::vector<std::future<InferResult>> fs;
      for (int i = 0; i < 32; ++i) fs.push_back(batching.infer_future(model, {{input, x}}));
      for (auto& g : fs) g.get().throw_if_error();
      auto st = batching.stats();
      std::printf("coalescing: %lld requests in %lld RPCs\n", static_cast<long long>(st.requests),
                  static_cast<long long>(st.rpcs));
    }

    // 5. The remote model as a plain quiver::Model: code written against Model runs unchanged.
    auto shared = std::make_shared<Client>(opt);
    RemoteModel remote(shared, model);
    std::vector<Tensor> outs = remote.run_once(std::vector<Tensor>{x});
    std::printf("Model interface: %zu output(s)\n", outs.size());

    auto rep = client.report();
    for (auto& s : rep.servers)
      std::printf("server %s: %lld requests, %lld failures, %s\n", s.address.c_str(), static_cast<long long>(s.requests),
                  static_cast<long long>(s.failures), s.serving ? "serving" : "out");
    std::printf("retries %lld, fallbacks %lld\n", static_cast<long long>(rep.retries),
                static_cast<long long>(rep.fallbacks));
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
