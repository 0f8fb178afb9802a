// Built-in event generator: a few jets of particle candidates per event.
#include <algorithm>
#include <cmath>

#include "jet_tagging.hpp"

namespace jet_tagging {

float delta_phi(float a, float b) {
  float d = a - b;
  while (d > static_cast<float>(M_PI)) d -= static_cast<float>(2 * M_PI);
  while (d <= -static_cast<float>(M_PI)) d += static_cast<float>(2 * M_PI);
  return d;
}

namespace {
float wrap_phi(float p) { return delta_phi(p, 0.f); }

Particle make_particle(ParticleType type, int sign, float pt, float eta, float phi) {
  Particle p;
  p.type = type;
  p.pt = pt;
  p.eta = eta;
  p.phi = wrap_phi(phi);
  double mass = 0;
  switch (type) {
    case ParticleType::ChargedHadron: p.pdg = 211 * sign; p.charge = sign; mass = 0.13957; break;
    case ParticleType::NeutralHadron: p.pdg = 130; p.charge = 0; mass = 0.497611; break;
    case ParticleType::Photon: p.pdg = 22; p.charge = 0; mass = 0; break;
    case ParticleType::Electron: p.pdg = -11 * sign; p.charge = sign; mass = 0.000511; break;
    case ParticleType::Muon: p.pdg = -13 * sign; p.charge = sign; mass = 0.105658; break;
  }
  double pz = pt * std::sinh(eta);
  p.e = static_cast<float>(std::sqrt(double(pt) * pt + pz * pz + mass * mass));
  return p;
}
}  // namespace

void GeneratorSource::generate(uint64_t seed, uint64_t index, int min_jets, int max_jets, int soft,
                               std::vector<Particle>& parts, std::vector<SecondaryVertex>& svs) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index * 0xBF58476D1CE4E5B9ull + 1);
  std::uniform_real_distribution<double> U(0, 1);
  auto gauss = [&](double s) {
    // Box-Muller on our own uniforms: identical on every standard library.
    double u1 = std::max(U(rng), 1e-300), u2 = U(rng);
    return s * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  };
  auto expo = [&](double mean) { return -mean * std::log(std::max(1 - U(rng), 1e-300)); };
  parts.clear();
  svs.clear();
  int njets = min_jets + static_cast<int>(U(rng) * (max_jets - min_jets + 1));
  njets = std::min(njets, max_jets);
  for (int j = 0; j < njets; ++j) {
    double jpt = std::min(30 + expo(60), 1000.0);
    double jeta = -2.4 + 4.8 * U(rng);
    double jphi = -M_PI + 2 * M_PI * U(rng);
    // flavour: 0 light, 1 gluon, 2 c, 3 b, 4 tau
    double f = U(rng);
    int flavour = f < 0.35 ? 0 : f < 0.6 ? 1 : f < 0.75 ? 2 : f < 0.92 ? 3 : 4;
    int n = flavour == 4 ? 3 + static_cast<int>(U(rng) * 3)
                         : 8 + static_cast<int>(jpt / 12 * (flavour == 1 ? 1.4 : 1.0) * (0.6 + 0.8 * U(rng)));
    n = std::min(n, 70);
    std::vector<double> frac(n);
    double sum = 0;
    for (auto& x : frac) sum += (x = expo(1.0) + 0.02);
    double width = (flavour == 4 ? 0.02 : 0.04) + 0.12 / (1 + jpt / 80);
    for (int i = 0; i < n; ++i) {
      double r = U(rng);
      ParticleType t = r < 0.60 ? ParticleType::ChargedHadron
                       : r < 0.70 ? ParticleType::NeutralHadron
                       : r < 0.95 ? ParticleType::Photon
                       : r < 0.98 ? ParticleType::Electron
                                  : ParticleType::Muon;
      int sign = U(rng) < 0.5 ? -1 : 1;
      Particle p = make_particle(t, sign, static_cast<float>(jpt * frac[i] / sum),
                                 static_cast<float>(jeta + gauss(width)), static_cast<float>(jphi + gauss(width)));
      p.flavour = flavour;
      if (p.charge != 0) {
        bool displaced = (flavour == 3 || flavour == 2 || flavour == 4) && U(rng) < 0.3;
        double s = displaced ? 0.08 : 0.004;
        p.dxy = static_cast<float>(gauss(s));
        p.dz = static_cast<float>(gauss(s * 1.5));
      }
      parts.push_back(p);
    }
    int nsv = flavour == 3 ? 1 + (U(rng) < 0.4) : flavour == 2 ? (U(rng) < 0.5) : (U(rng) < 0.05);
    for (int k = 0; k < nsv; ++k) {
      SecondaryVertex sv;
      sv.pt = static_cast<float>(jpt * (0.2 + 0.4 * U(rng)));
      sv.eta = static_cast<float>(jeta + gauss(0.03));
      sv.phi = wrap_phi(static_cast<float>(jphi + gauss(0.03)));
      sv.mass = static_cast<float>(flavour == 3 ? 1 + 3.5 * U(rng) : 0.5 + 1.5 * U(rng));
      sv.ntracks = 2 + static_cast<int>(U(rng) * 4);
      sv.chi2 = static_cast<float>(expo(1.5));
      sv.dxy = static_cast<float>(expo(0.2));
      sv.dxysig = static_cast<float>(sv.dxy / (0.01 + 0.01 * U(rng)));
      sv.d3d = static_cast<float>(sv.dxy * (1 + 0.5 * U(rng)));
      sv.d3dsig = static_cast<float>(sv.d3d / (0.012 + 0.01 * U(rng)));
      svs.push_back(sv);
    }
  }
  for (int i = 0; i < soft; ++i) {
    double r = U(rng);
    ParticleType t = r < 0.65 ? ParticleType::ChargedHadron : r < 0.75 ? ParticleType::NeutralHadron : ParticleType::Photon;
    Particle p = make_particle(t, U(rng) < 0.5 ? -1 : 1, static_cast<float>(0.3 + expo(0.8)),
                               static_cast<float>(-4 + 8 * U(rng)), static_cast<float>(-M_PI + 2 * M_PI * U(rng)));
    if (p.charge) {
      p.dxy = static_cast<float>(gauss(0.004));
      p.dz = static_cast<float>(gauss(0.006));
    }
    parts.push_back(p);
  }
}

bool GeneratorSource::emit(qf::Event& e) {
  uint64_t i = next_++;
  e.set_number(i);
  generate(static_cast<uint64_t>(*seed_), i, *min_jets_, *max_jets_, *soft_, particles_(e), svs_(e));
  return true;
}

}  // namespace jet_tagging
