// HepMC3 ASCII input: final-state particles of each event.
#include <HepMC3/GenEvent.h>
#include <HepMC3/GenParticle.h>
#include <HepMC3/GenVertex.h>
#include <HepMC3/ReaderAscii.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "jet_tagging.hpp"

namespace jet_tagging {

int pdg_charge(int pdg) {
  int a = std::abs(pdg), s = pdg > 0 ? 1 : -1;
  switch (a) {
    case 11: case 13: case 15: return -s;                 // leptons: e-, mu-, tau- have pdg > 0
    case 211: case 321: case 2212: case 3222: case 411: case 431: case 521: case 24: return s;
    case 3112: case 3312: case 3334: return -s;           // Sigma-, Xi-, Omega-
    default: return 0;
  }
}

ParticleType pdg_type(int pdg) {
  int a = std::abs(pdg);
  if (a == 22) return ParticleType::Photon;
  if (a == 11) return ParticleType::Electron;
  if (a == 13) return ParticleType::Muon;
  return pdg_charge(pdg) != 0 ? ParticleType::ChargedHadron : ParticleType::NeutralHadron;
}

struct HepMC3Source::Impl {
  std::ifstream in;
  std::unique_ptr<HepMC3::ReaderAscii> reader;
  uint64_t read = 0;
  std::string file;
};

HepMC3Source::HepMC3Source() : impl_(std::make_unique<Impl>()) {}
HepMC3Source::~HepMC3Source() = default;

void HepMC3Source::init() {
  impl_->file = *file_;
  if (!std::filesystem::exists(impl_->file))
    throw quiver::Error(quiver::ErrorCode::NotFound, "HepMC3 file not found", {.file = impl_->file});
  impl_->in = std::ifstream(impl_->file);
  if (!impl_->in) throw quiver::Error(quiver::ErrorCode::NotFound, "cannot open HepMC3 file", {.file = impl_->file});
  std::string first;
  std::getline(impl_->in, first);
  if (first.rfind("HepMC::Version", 0) != 0)
    throw quiver::Error(quiver::ErrorCode::Parse, "not a HepMC3 ASCII file (no 'HepMC::Version' header)",
                        {.file = impl_->file, .offset = 1});
  impl_->in.seekg(0);
  impl_->reader = std::make_unique<HepMC3::ReaderAscii>(impl_->in);
  impl_->read = 0;
}

void HepMC3Source::finish() {
  if (impl_->reader) impl_->reader->close();
  impl_->reader.reset();
  impl_->in.close();
}

bool HepMC3Source::emit(qf::Event& e) {
  auto& I = *impl_;
  HepMC3::GenEvent evt(HepMC3::Units::GEV, HepMC3::Units::MM);
  std::streampos before = I.in.tellg();
  bool ok = I.reader->read_event(evt);
  uint64_t index = I.read;
  if (!ok || I.reader->failed() || evt.particles().empty()) {
    // The normal end: nothing but blank lines and the HepMC3 footer after the last event. A
    // truncated or garbled event (which HepMC3 returns empty) is corruption.
    bool clean_end = true;
    if (before != std::streampos(-1)) {
      I.in.clear();
      I.in.seekg(before);
      std::string line;
      while (std::getline(I.in, line))
        if (!line.empty() && line.rfind("HepMC::", 0) != 0) {
          clean_end = false;
          break;
        }
    }
    if (clean_end) return false;
    throw quiver::Error(quiver::ErrorCode::Parse,
                        "corrupt HepMC3 record (event " + std::to_string(index) + " in file)",
                        {.file = I.file, .offset = static_cast<int64_t>(index)});
  }
  evt.set_units(HepMC3::Units::GEV, HepMC3::Units::MM);
  I.read++;
  e.set_number(evt.event_number() >= 0 ? static_cast<uint64_t>(evt.event_number()) : index);
  auto& parts = particles_(e);
  svs_(e);  // none in HepMC3 input (published empty)
  for (auto& gp : evt.particles()) {
    if (gp->status() != 1) continue;
    const auto& m = gp->momentum();
    if (m.pt() < 1e-6) continue;
    Particle p;
    p.pt = static_cast<float>(m.pt());
    p.eta = static_cast<float>(m.eta());
    p.phi = static_cast<float>(m.phi());
    p.e = static_cast<float>(m.e());
    p.pdg = gp->pid();
    p.charge = pdg_charge(p.pdg);
    p.type = pdg_type(p.pdg);
    if (p.charge != 0 && gp->production_vertex()) {
      const auto& x = gp->production_vertex()->position();
      p.dxy = static_cast<float>(0.1 * std::hypot(x.x(), x.y()));  // mm -> cm
      p.dz = static_cast<float>(0.1 * x.z());
    }
    if (!std::isfinite(p.eta) || !std::isfinite(p.e))
      throw quiver::Error(quiver::ErrorCode::Parse, "HepMC3 event " + std::to_string(index) + ": non-finite momentum",
                          {.file = I.file, .offset = static_cast<int64_t>(index)});
    parts.push_back(p);
  }
  return true;
}

}  // namespace jet_tagging
