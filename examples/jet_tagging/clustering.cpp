// Jets: FastJet anti-kt.
#include <fastjet/ClusterSequence.hh>

#include <cmath>

#include "jet_tagging.hpp"

namespace jet_tagging {

void JetClustering::init() {
  // FastJet prints its banner once, on first use: do it now, into nothing, not from a worker.
  fastjet::ClusterSequence::set_fastjet_banner_stream(nullptr);
  fastjet::ClusterSequence::print_banner();
  if (*r_ <= 0 || *r_ > 2)
    throw quiver::Error(quiver::ErrorCode::InvalidArgument, "parameter '" + name() + ".R' must be in (0, 2]");
}

void JetClustering::process(qf::Event& e) {
  const auto& parts = particles_(e);
  std::vector<fastjet::PseudoJet> in;
  in.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const Particle& p = parts[i];
    double px = p.pt * std::cos(p.phi), py = p.pt * std::sin(p.phi), pz = p.pt * std::sinh(p.eta);
    fastjet::PseudoJet pj(px, py, pz, p.e);
    pj.set_user_index(static_cast<int>(i));
    in.push_back(pj);
  }
  fastjet::JetDefinition def(fastjet::antikt_algorithm, *r_);
  fastjet::ClusterSequence cs(in, def);
  auto& jets = jets_(e);
  for (auto& j : fastjet::sorted_by_pt(cs.inclusive_jets(*ptmin_))) {
    if (std::abs(j.eta()) > *etamax_) continue;
    Jet out;
    out.pt = static_cast<float>(j.pt());
    out.eta = static_cast<float>(j.eta());
    out.phi = static_cast<float>(j.phi_std());
    out.e = static_cast<float>(j.e());
    out.mass = static_cast<float>(j.m());
    double flavour_pt[5] = {0, 0, 0, 0, 0};
    for (auto& c : j.constituents()) {
      out.constituents.push_back(c.user_index());
      const Particle& p = parts[static_cast<size_t>(c.user_index())];
      if (p.flavour >= 0 && p.flavour < 5) flavour_pt[p.flavour] += p.pt;
    }
    for (int f = 0; f < 5; ++f)
      if (flavour_pt[f] > 0 && (out.truth_flavour < 0 || flavour_pt[f] > flavour_pt[out.truth_flavour])) out.truth_flavour = f;
    jets.push_back(std::move(out));
  }
}

}  // namespace jet_tagging
