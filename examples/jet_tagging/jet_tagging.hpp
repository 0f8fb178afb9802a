// Jet tagging end to end with Quiver's event framework:
//   source (built-in generator or HepMC3 file) -> "particles", "secondary_vertices"
//   jets (FastJet anti-kt, R = 0.4)             -> "jets"
//   inference (ParticleNet-AK4, direct | batched | service) -> "jet_tags"
//   writer (CSV + HDF5, provenance columns; failed events listed)
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "quiver/flow/application.hpp"
#include "quiver/flow/inference.hpp"

namespace jet_tagging {

namespace qf = quiver::flow;

enum class ParticleType : int { ChargedHadron = 0, NeutralHadron = 1, Photon = 2, Electron = 3, Muon = 4 };

struct Particle {
  float pt = 0, eta = 0, phi = 0, e = 0;
  int charge = 0;
  int pdg = 0;
  ParticleType type = ParticleType::ChargedHadron;
  float dxy = 0, dz = 0;  // transverse / longitudinal impact parameter (cm), charged only
  int flavour = -1;       // generator truth: flavour of the jet it came from (kFlavourNames); -1: none
};

// Generator truth flavours of jets (Particle::flavour, Jet::truth_flavour).
inline constexpr const char* kFlavourNames[5] = {"light", "gluon", "c", "b", "tau"};

struct SecondaryVertex {
  float pt = 0, eta = 0, phi = 0, mass = 0;
  int ntracks = 0;
  float chi2 = 0, dxy = 0, dxysig = 0, d3d = 0, d3dsig = 0;
};

struct Jet {
  float pt = 0, eta = 0, phi = 0, e = 0, mass = 0;
  std::vector<int> constituents;  // indices into "particles"
  int truth_flavour = -1;         // the truth flavour carrying most of its constituents' pt; -1: none
};

// ParticleNet-AK4 inputs of one jet: six arrays [channels, points], back to back in this order.
struct InputLayout {
  const char* name;
  int channels, points;
};
inline constexpr int kMaxPf = 50;  // candidates per jet (CMSSW pads to <= 50)
inline constexpr int kMaxSv = 5;   // secondary vertices per jet
inline constexpr InputLayout kInputLayout[6] = {{"pf_points", 2, kMaxPf}, {"pf_features", 23, kMaxPf},
                                                {"pf_mask", 1, kMaxPf},   {"sv_points", 2, kMaxSv},
                                                {"sv_features", 11, kMaxSv}, {"sv_mask", 1, kMaxSv}};
inline constexpr int kInputFloats = (2 + 23 + 1) * kMaxPf + (2 + 11 + 1) * kMaxSv;  // per jet

// ParticleNet-AK4 outputs: softmax over tau+, tau-, b, c, uds, g, and the pt regression.
struct JetTag {
  float prob[6] = {0, 0, 0, 0, 0, 0};
  float target_pt = 0;
};
struct JetTags {
  std::vector<JetTag> tags;  // one per jet, same order as "jets"
  qf::Provenance provenance;
  // With the tagger's keep_inputs: each jet's model inputs (kInputFloats per jet, kInputLayout order),
  // so that the model can be re-run on exactly these jets elsewhere (examples/python).
  std::vector<float> inputs;
};

float delta_phi(float a, float b);

// ---- sources
// Events with several jets of particle candidates (and secondary vertices in heavy-flavour jets)
// plus soft underlying event. Deterministic: event i depends only on (seed, i).
class GeneratorSource : public qf::Source {
 public:
  qf::Output<std::vector<Particle>> particles_{this, "particles"};
  qf::Output<std::vector<SecondaryVertex>> svs_{this, "secondary_vertices"};
  qf::Parameter<int64_t> seed_{this, "seed", 42, "random seed"};
  qf::Parameter<int> min_jets_{this, "min_jets", 2, "fewest jets per event"};
  qf::Parameter<int> max_jets_{this, "max_jets", 6, "most jets per event"};
  qf::Parameter<int> soft_{this, "soft_particles", 20, "underlying-event particles per event"};
  void init() override { next_ = 0; }
  bool emit(qf::Event& e) override;
  // The same event, outside the framework (tests, HepMC3 file writing).
  static void generate(uint64_t seed, uint64_t index, int min_jets, int max_jets, int soft,
                       std::vector<Particle>& particles, std::vector<SecondaryVertex>& svs);

 private:
  uint64_t next_ = 0;
};

// HepMC3 ASCII files: final-state particles (status 1); no secondary vertices.
class HepMC3Source : public qf::Source {
 public:
  qf::Output<std::vector<Particle>> particles_{this, "particles"};
  qf::Output<std::vector<SecondaryVertex>> svs_{this, "secondary_vertices"};
  qf::Parameter<std::string> file_{this, "file", qf::Required{}, "HepMC3 ASCII input file"};
  HepMC3Source();
  ~HepMC3Source() override;
  void init() override;
  void finish() override;
  bool emit(qf::Event& e) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
// Particle charge and type from a PDG id (common final-state particles; others neutral hadrons).
int pdg_charge(int pdg);
ParticleType pdg_type(int pdg);

// ---- reconstruction
class JetClustering : public qf::Factory {
 public:
  qf::Input<std::vector<Particle>> particles_{this, "particles"};
  qf::Output<std::vector<Jet>> jets_{this, "jets"};
  qf::Parameter<double> r_{this, "R", 0.4, "anti-kt distance parameter"};
  qf::Parameter<double> ptmin_{this, "ptmin", 20.0, "minimum jet pt (GeV)"};
  qf::Parameter<double> etamax_{this, "etamax", 2.5, "maximum |jet eta|"};
  void init() override;
  void process(qf::Event& e) override;
};

// ParticleNet-AK4 (CMS HLT) inputs, built once; the mode (direct/batched/service) is a parameter.
class ParticleNetTagger : public qf::InferenceFactory {
 public:
  static constexpr int kMaxPf = jet_tagging::kMaxPf;
  static constexpr int kMaxSv = jet_tagging::kMaxSv;
  qf::Input<std::vector<Particle>> particles_{this, "particles"};
  qf::Input<std::vector<SecondaryVertex>> svs_{this, "secondary_vertices"};
  qf::Input<std::vector<Jet>> jets_{this, "jets"};
  qf::Output<JetTags> tags_{this, "jet_tags"};
  qf::Parameter<bool> keep_inputs_{this, "keep_inputs", false,
                                   "also keep each jet's model inputs in jet_tags (the writer's HDF5 gets /inputs)"};
  ParticleNetTagger();

 protected:
  void fill_inputs(const qf::Event& e, qf::InferenceInputs& in) override;
  void read_outputs(qf::Event& e, const qf::InferenceOutputs& out) override;
};

// ---- output
class JetTagWriter : public qf::Processor {
 public:
  qf::Input<std::vector<Jet>> jets_{this, "jets"};
  qf::Input<JetTags> tags_{this, "jet_tags"};
  qf::Parameter<std::string> csv_{this, "csv", "jet_tags.csv", "CSV output (empty: none)"};
  qf::Parameter<std::string> hdf5_{this, "hdf5", "", "HDF5 output (empty: none)"};
  qf::Parameter<std::string> failed_{this, "failed_csv", "", "failed events CSV (default: <csv>.failed.csv)"};
  JetTagWriter();
  ~JetTagWriter() override;
  void init() override;
  void process(const qf::Event& e) override;
  void failed(const qf::Event& e, const quiver::Error& error) override;
  void finish() override;
  uint64_t rows() const { return rows_; }

 private:
  struct Columns;
  std::unique_ptr<Columns> cols_;
  std::ofstream csv_out_, failed_out_;
  uint64_t rows_ = 0, failed_rows_ = 0;
};

// Registers the components in `app` (what the plugin does). Parameter source.type: generator | hepmc.
void add_components(qf::Application& app);

}  // namespace jet_tagging
