// ParticleNet-AK4 inputs from jets and their candidates; written once for every inference mode.
//
// Inputs (see ../shared/models/hep/particlenet_ak4_hlt/README.md): per jet
//   pf_points [2, 50]   (deta, dphi) of up to 50 candidates, highest pt first
//   pf_features [23, 50] normalised (x - median) * norm, clipped to [-5, 5]
//   pf_mask [1, 50]     1 for real candidates
//   sv_points [2, 5], sv_features [11, 5], sv_mask [1, 5]  for secondary vertices within dR < 0.4
// Every jet is padded to the same 50 / 5 points so that jets of different events batch together;
// padded points are masked (the model shifts them far away) and do not change the scores.
// The normalisation constants approximate CMSSW's preprocess.json (not shipped with the model);
// they are fixed here, so all three modes see identical inputs.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "jet_tagging.hpp"

namespace jet_tagging {

namespace {
struct Norm {
  float median, factor;
};
// pt_log, energy_log, deta, dphi, eta, charge, frompv, nlostinnerhits, track_chi2, track_qual,
// dz, dzsig, dxy, dxysig, etarel, pperp_ratio, ppara_ratio, trackjet_d3d, trackjet_d3dsig,
// trackjet_dist, trackjet_decayL, npixhits, nstriphits
constexpr Norm kPf[23] = {{1.0f, 0.5f},  {1.3f, 0.5f},  {0.f, 4.f},   {0.f, 4.f},  {0.f, 0.8f}, {0.f, 1.f},
                          {0.f, 0.3f},   {0.f, 1.f},    {0.f, 0.2f},  {0.f, 0.2f}, {0.f, 20.f}, {0.f, 0.2f},
                          {0.f, 20.f},   {0.f, 0.2f},   {2.f, 0.3f},  {0.f, 5.f},  {1.f, 5.f},  {0.f, 20.f},
                          {0.f, 0.2f},   {0.f, 20.f},   {0.f, 5.f},   {0.f, 0.2f}, {0.f, 0.1f}};
// pt_log, mass, deta, dphi, eta, ntrack, chi2, dxy, dxysig, d3d, d3dsig
constexpr Norm kSv[11] = {{3.f, 0.6f}, {1.2f, 0.3f}, {0.f, 4.f}, {0.f, 4.f}, {0.f, 0.8f}, {3.f, 0.5f},
                          {0.7f, 0.5f}, {0.2f, 0.5f}, {10.f, 0.1f}, {0.3f, 0.4f}, {10.f, 0.1f}};
float norm(float x, Norm n) { return std::clamp((x - n.median) * n.factor, -5.f, 5.f); }
float safe_log(float x) { return std::log(std::max(x, 1e-6f)); }
}  // namespace


ParticleNetTagger::ParticleNetTagger() {
  set_dim("n_pf", kMaxPf);
  set_dim("n_sv", kMaxSv);
}

// One jet's inputs (the six arrays of kInputLayout), into zeroed memory.
static void fill_jet(const std::vector<Particle>& parts, const std::vector<SecondaryVertex>& svs, const Jet& jet, float* pts,
              float* feat, float* mask, float* spts, float* sfeat, float* smask) {
  // jet axis as a unit vector
  double jx = std::cos(jet.phi), jy = std::sin(jet.phi), jz = std::sinh(jet.eta);
  double jn = std::sqrt(jx * jx + jy * jy + jz * jz);
  jx /= jn, jy /= jn, jz /= jn;
  std::vector<int> order = jet.constituents;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return parts[a].pt > parts[b].pt; });
  if (order.size() > static_cast<size_t>(kMaxPf)) order.resize(kMaxPf);
  for (size_t i = 0; i < order.size(); ++i) {
    const Particle& p = parts[order[i]];
    float deta = p.eta - jet.eta, dphi = delta_phi(p.phi, jet.phi);
    pts[0 * kMaxPf + i] = deta;
    pts[1 * kMaxPf + i] = dphi;
    mask[i] = 1.f;
    double px = p.pt * std::cos(p.phi), py = p.pt * std::sin(p.phi), pz = p.pt * std::sinh(p.eta);
    double pmag = std::sqrt(px * px + py * py + pz * pz);
    double ppara = px * jx + py * jy + pz * jz;
    double pperp = std::sqrt(std::max(0.0, pmag * pmag - ppara * ppara));
    double etarel = 0.5 * std::log((pmag + ppara + 1e-9) / (pmag - ppara + 1e-9));
    bool charged = p.charge != 0;
    float d3d = std::hypot(p.dxy, p.dz);
    float v[23] = {safe_log(p.pt),
                   safe_log(p.e),
                   deta,
                   dphi,
                   p.eta,
                   static_cast<float>(p.charge),
                   charged ? 3.f : 0.f,
                   0.f,
                   charged ? 1.f : 0.f,
                   charged ? 5.f : 0.f,
                   charged ? p.dz : 0.f,
                   charged ? p.dz / 0.01f : 0.f,
                   charged ? p.dxy : 0.f,
                   charged ? p.dxy / 0.005f : 0.f,
                   static_cast<float>(etarel),
                   static_cast<float>(pperp / std::max(pmag, 1e-9)),
                   static_cast<float>(ppara / std::max(pmag, 1e-9)),
                   charged ? d3d : 0.f,
                   charged ? d3d / 0.01f : 0.f,
                   charged ? -std::abs(p.dxy) * 0.1f : 0.f,
                   charged ? d3d : 0.f,
                   charged ? 4.f : 0.f,
                   charged ? 10.f : 0.f};
    for (int f = 0; f < 23; ++f) feat[f * kMaxPf + i] = norm(v[f], kPf[f]);
  }
  // secondary vertices within dR < 0.4, highest d3dsig first
  std::vector<int> sv_idx;
  for (size_t s = 0; s < svs.size(); ++s) {
    float dr = std::hypot(svs[s].eta - jet.eta, delta_phi(svs[s].phi, jet.phi));
    if (dr < 0.4f) sv_idx.push_back(static_cast<int>(s));
  }
  std::stable_sort(sv_idx.begin(), sv_idx.end(), [&](int a, int b) { return svs[a].d3dsig > svs[b].d3dsig; });
  if (sv_idx.size() > static_cast<size_t>(kMaxSv)) sv_idx.resize(kMaxSv);
  for (size_t i = 0; i < sv_idx.size(); ++i) {
    const SecondaryVertex& sv = svs[sv_idx[i]];
    float deta = sv.eta - jet.eta, dphi = delta_phi(sv.phi, jet.phi);
    spts[0 * kMaxSv + i] = deta;
    spts[1 * kMaxSv + i] = dphi;
    smask[i] = 1.f;
    float v[11] = {safe_log(sv.pt), sv.mass, deta, dphi, sv.eta, static_cast<float>(sv.ntracks),
                   sv.chi2, sv.dxy, sv.dxysig, sv.d3d, sv.d3dsig};
    for (int f = 0; f < 11; ++f) sfeat[f * kMaxSv + i] = norm(v[f], kSv[f]);
  }
}

void ParticleNetTagger::fill_inputs(const qf::Event& e, qf::InferenceInputs& in) {
  const auto& parts = particles_(e);
  const auto& svs = svs_(e);
  const auto& jets = jets_(e);
  in.resize(jets.size());
  const size_t k_pf_pts = in.input_index("pf_points"), k_pf_feat = in.input_index("pf_features"),
               k_pf_mask = in.input_index("pf_mask"), k_sv_pts = in.input_index("sv_points"),
               k_sv_feat = in.input_index("sv_features"), k_sv_mask = in.input_index("sv_mask");
  for (size_t j = 0; j < jets.size(); ++j)
    fill_jet(parts, svs, jets[j], in.f32(k_pf_pts, j), in.f32(k_pf_feat, j), in.f32(k_pf_mask, j), in.f32(k_sv_pts, j),
             in.f32(k_sv_feat, j), in.f32(k_sv_mask, j));
}

void ParticleNetTagger::read_outputs(qf::Event& e, const qf::InferenceOutputs& out) {
  JetTags& t = tags_(e);
  t.provenance = out.provenance();
  if (*keep_inputs_) {
    // The same function as fill_inputs on the same event: the very inputs the model saw.
    const auto& jets = jets_(e);
    t.inputs.assign(jets.size() * kInputFloats, 0.f);
    for (size_t j = 0; j < jets.size(); ++j) {
      float* p = t.inputs.data() + j * kInputFloats;
      float* a[6];
      for (int k = 0; k < 6; ++k) {
        a[k] = p;
        p += kInputLayout[k].channels * kInputLayout[k].points;
      }
      fill_jet(particles_(e), svs_(e), jets[j], a[0], a[1], a[2], a[3], a[4], a[5]);
    }
  }
  if (out.size() == 0) return;
  size_t k = out.output_index("output");
  if (out.item_numel(k) != 7)
    throw quiver::Error(quiver::ErrorCode::InvalidArgument,
                        "expected 7 outputs per jet, got " + std::to_string(out.item_numel(k)), {.tensor = "output"});
  for (size_t j = 0; j < out.size(); ++j) {
    const float* o = out.f32(k, j);
    JetTag tag;
    for (int c = 0; c < 6; ++c) tag.prob[c] = o[c];
    tag.target_pt = o[6];
    t.tags.push_back(tag);
  }
}

}  // namespace jet_tagging
