#include "quiver/client/balancer.hpp"

#include <algorithm>

namespace quiver::client {

bool CircuitBreaker::record_failure(int64_t now_ns) {
  if (state_ != State::Closed) return false;
  if (++failures_ >= opt_.failure_threshold) {
    trip(now_ns);
    return true;
  }
  return false;
}

void CircuitBreaker::trip(int64_t now_ns) {
  state_ = State::Open;
  reopen_at_ns_ = now_ns + wait_ns_;
}

void CircuitBreaker::record_success() {
  if (state_ == State::Closed) failures_ = 0;
}

void CircuitBreaker::probe_result(bool ok, int64_t now_ns) {
  if (ok) {
    state_ = State::Closed;
    failures_ = 0;
    wait_ns_ = opt_.open_ns;
  } else {
    wait_ns_ = std::min(wait_ns_ * 2, opt_.max_open_ns);
    trip(now_ns);
  }
}

void ServerState::on_success() {
  successes.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lk(mu);
  breaker.record_success();
}

bool ServerState::on_transport_failure(int64_t now_ns) {
  std::lock_guard lk(mu);
  bool opened = breaker.record_failure(now_ns);
  if (opened) {
    serving.store(false);
    breaker_trips.fetch_add(1, std::memory_order_relaxed);
  }
  return opened;
}

bool ServerState::serves(const std::string& model) const {
  if (!any_missing.load(std::memory_order_relaxed)) return true;
  std::lock_guard lk(mu);
  return !missing_models.count(model);
}

void ServerState::mark_missing(const std::string& model) {
  std::lock_guard lk(mu);
  missing_models.insert(model);
  any_missing.store(true);
}

void ServerState::clear_missing() {
  std::lock_guard lk(mu);
  missing_models.clear();
  any_missing.store(false);
}

void Balancer::set_servers(const std::vector<std::string>& endpoints, bool start_serving) {
  std::unique_lock lk(mu_);
  for (auto& s : servers_)
    s->removed.store(std::find(endpoints.begin(), endpoints.end(), s->address) == endpoints.end());
  for (auto& e : endpoints) {
    bool known = std::any_of(servers_.begin(), servers_.end(), [&](auto& s) { return s->address == e; });
    if (known) continue;
    auto s = std::make_shared<ServerState>(e, breaker_opt_);
    if (!start_serving) {
      s->breaker.trip(0);
      s->serving.store(false);
    }
    servers_.push_back(std::move(s));
  }
}

double Balancer::cost(const ServerState& s) const {
  // (outstanding + 1) weighted by a bounded queue-time factor in [1, 2): the statistics are a
  // second old, so an additive queue term would send everything to the server that looked idle
  // last second (herding); a bounded multiplier only shifts the share between servers.
  const double out = s.outstanding.load(std::memory_order_relaxed) + 1.0;
  if (opt_.queue_ns_per_request <= 0) return out;
  const double q = static_cast<double>(s.queue_ns.load(std::memory_order_relaxed));
  return out * (1.0 + q / (q + static_cast<double>(opt_.queue_ns_per_request)));
}

std::shared_ptr<ServerState> Balancer::pick(const std::string& model,
                                            const std::vector<const ServerState*>& exclude) const {
  thread_local std::minstd_rand rng(std::random_device{}());
  std::shared_lock lk(mu_);
  // Candidate indices without allocating for the common small case.
  constexpr size_t kMaxLocal = 64;
  size_t local[kMaxLocal];
  std::vector<size_t> heap;
  size_t n = 0;
  for (size_t i = 0; i < servers_.size(); ++i) {
    const ServerState& s = *servers_[i];
    if (s.removed.load(std::memory_order_relaxed) || !s.serving.load(std::memory_order_relaxed)) continue;
    if (std::find(exclude.begin(), exclude.end(), &s) != exclude.end()) continue;
    if (!model.empty() && !s.serves(model)) continue;
    if (n < kMaxLocal) local[n] = i;
    else {
      if (heap.empty()) heap.assign(local, local + kMaxLocal);
      heap.push_back(i);
    }
    ++n;
  }
  if (n == 0) return nullptr;
  auto at = [&](size_t k) { return heap.empty() ? local[k] : heap[k]; };
  if (n == 1) return servers_[at(0)];
  size_t a = rng() % n, b = rng() % (n - 1);
  if (b >= a) ++b;
  const auto& sa = servers_[at(a)];
  const auto& sb = servers_[at(b)];
  return cost(*sb) < cost(*sa) ? sb : sa;
}

std::vector<std::shared_ptr<ServerState>> Balancer::servers() const {
  std::shared_lock lk(mu_);
  return servers_;
}

std::shared_ptr<ServerState> Balancer::find(const std::string& endpoint) const {
  std::shared_lock lk(mu_);
  for (auto& s : servers_)
    if (s->address == endpoint) return s;
  return nullptr;
}

int Balancer::serving_count() const {
  std::shared_lock lk(mu_);
  int n = 0;
  for (auto& s : servers_) n += !s->removed.load() && s->serving.load();
  return n;
}

}  // namespace quiver::client
