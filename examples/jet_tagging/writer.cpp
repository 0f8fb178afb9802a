// Writer: one row per jet, in event order, with provenance columns; CSV and HDF5. Events that
// failed are listed (event, component, message) so that every event is written or reported.
#include <hdf5.h>

#include <cstdio>
#include <filesystem>

#include "jet_tagging.hpp"

namespace jet_tagging {

struct JetTagWriter::Columns {
  std::vector<uint64_t> event;
  std::vector<int32_t> jet, ncons, truth_flavour;
  std::vector<float> pt, eta, phi, mass, target_pt;
  std::vector<float> prob[6];
  std::vector<float> inputs[6];  // kInputLayout order, when the tagger keeps its inputs
  std::vector<std::string> model, version, sha256, mode;
  std::vector<uint64_t> failed_event;
  std::vector<std::string> failed_component, failed_message;
};

namespace {
const char* kProbNames[6] = {"prob_taup", "prob_taum", "prob_b", "prob_c", "prob_uds", "prob_g"};

std::string csv_quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
  return o + "\"";
}

void h5check(herr_t r, const std::string& what, const std::string& file) {
  if (r < 0) throw quiver::Error(quiver::ErrorCode::Internal, "HDF5: " + what + " failed", {.file = file});
}
template <class T>
void h5write(hid_t loc, const char* name, hid_t type, const std::vector<T>& v, const std::string& file) {
  hsize_t n = v.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) {
    H5Sclose(space);
    h5check(-1, std::string("creating dataset ") + name, file);
  }
  herr_t r = n ? H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) : 0;
  H5Dclose(ds);
  H5Sclose(space);
  h5check(r, std::string("writing ") + name, file);
}
// A float dataset [rows, channels, points] (the model inputs of `rows` jets).
void h5write_3d(hid_t loc, const char* name, const std::vector<float>& v, hsize_t channels, hsize_t points,
                const std::string& file) {
  hsize_t dims[3] = {v.size() / (channels * points), channels, points};
  hid_t space = H5Screate_simple(3, dims, nullptr);
  hid_t ds = H5Dcreate2(loc, name, H5T_NATIVE_FLOAT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = ds < 0 ? -1 : (v.empty() ? 0 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  h5check(r, std::string("writing inputs/") + name, file);
}
void h5write_strings(hid_t loc, const char* name, const std::vector<std::string>& v, const std::string& file) {
  std::vector<const char*> ptrs;
  for (auto& s : v) ptrs.push_back(s.c_str());
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  hsize_t n = v.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = ds < 0 ? -1 : (n ? H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) : 0);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  H5Tclose(type);
  h5check(r, std::string("writing ") + name, file);
}
}  // namespace

JetTagWriter::JetTagWriter() : Processor(Mode::Sequential), cols_(std::make_unique<Columns>()) {}
JetTagWriter::~JetTagWriter() = default;

void JetTagWriter::init() {
  cols_ = std::make_unique<Columns>();
  rows_ = failed_rows_ = 0;
  if (!csv_->empty()) {
    csv_out_ = std::ofstream(*csv_);
    if (!csv_out_) throw quiver::Error(quiver::ErrorCode::NotFound, "cannot write CSV output", {.file = *csv_});
    csv_out_ << "event,jet,pt,eta,phi,mass,n_constituents";
    for (auto* n : kProbNames) csv_out_ << "," << n;
    csv_out_ << ",target_pt,model,model_version,model_sha256,inference_mode\n";
  }
  std::string failed = failed_->empty() && !csv_->empty() ? *csv_ + ".failed.csv" : *failed_;
  if (!failed.empty()) {
    failed_out_ = std::ofstream(failed);
    if (!failed_out_) throw quiver::Error(quiver::ErrorCode::NotFound, "cannot write failed-events CSV", {.file = failed});
    failed_out_ << "event,component,message\n";
  }
}

void JetTagWriter::process(const qf::Event& e) {
  const auto& jets = jets_(e);
  const auto& tags = tags_(e);
  if (tags.tags.size() != jets.size())
    throw quiver::Error(quiver::ErrorCode::Internal, "jet_tags has " + std::to_string(tags.tags.size()) +
                                                         " entries for " + std::to_string(jets.size()) + " jets");
  const auto& pv = tags.provenance;
  char buf[512];
  for (size_t j = 0; j < jets.size(); ++j) {
    const Jet& jet = jets[j];
    const JetTag& t = tags.tags[j];
    if (csv_out_.is_open()) {
      std::snprintf(buf, sizeof buf, "%llu,%zu,%.6g,%.6g,%.6g,%.6g,%zu", static_cast<unsigned long long>(e.number()), j,
                    jet.pt, jet.eta, jet.phi, jet.mass, jet.constituents.size());
      csv_out_ << buf;
      for (int c = 0; c < 6; ++c) {
        std::snprintf(buf, sizeof buf, ",%.9g", t.prob[c]);
        csv_out_ << buf;
      }
      std::snprintf(buf, sizeof buf, ",%.9g,", t.target_pt);
      csv_out_ << buf << pv.model << "," << pv.version << "," << pv.sha256 << "," << pv.mode << "\n";
    }
    if (!hdf5_->empty()) {
      auto& c = *cols_;
      c.event.push_back(e.number());
      c.jet.push_back(static_cast<int32_t>(j));
      c.ncons.push_back(static_cast<int32_t>(jet.constituents.size()));
      c.truth_flavour.push_back(jet.truth_flavour);
      c.pt.push_back(jet.pt);
      c.eta.push_back(jet.eta);
      c.phi.push_back(jet.phi);
      c.mass.push_back(jet.mass);
      for (int k = 0; k < 6; ++k) c.prob[k].push_back(t.prob[k]);
      c.target_pt.push_back(t.target_pt);
      c.model.push_back(pv.model);
      c.version.push_back(pv.version);
      c.sha256.push_back(pv.sha256);
      c.mode.push_back(pv.mode);
      if (tags.inputs.size() == jets.size() * kInputFloats) {
        const float* p = tags.inputs.data() + j * kInputFloats;
        for (int k = 0; k < 6; ++k) {
          const int n = kInputLayout[k].channels * kInputLayout[k].points;
          c.inputs[k].insert(c.inputs[k].end(), p, p + n);
          p += n;
        }
      }
    }
    rows_++;
  }
}

void JetTagWriter::failed(const qf::Event& e, const quiver::Error& error) {
  failed_rows_++;
  if (failed_out_.is_open())
    failed_out_ << e.number() << "," << csv_quote(error.where().node) << "," << csv_quote(error.what()) << "\n";
  if (!hdf5_->empty()) {
    cols_->failed_event.push_back(e.number());
    cols_->failed_component.push_back(error.where().node);
    cols_->failed_message.push_back(error.what());
  }
}

void JetTagWriter::finish() {
  if (csv_out_.is_open()) csv_out_.close();
  if (failed_out_.is_open()) failed_out_.close();
  if (hdf5_->empty()) return;
  const std::string& f = *hdf5_;
  hid_t file = H5Fcreate(f.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) throw quiver::Error(quiver::ErrorCode::NotFound, "cannot create HDF5 output", {.file = f});
  try {
    hid_t g = H5Gcreate2(file, "jets", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    auto& c = *cols_;
    h5write(g, "event", H5T_NATIVE_UINT64, c.event, f);
    h5write(g, "jet", H5T_NATIVE_INT32, c.jet, f);
    h5write(g, "n_constituents", H5T_NATIVE_INT32, c.ncons, f);
    h5write(g, "truth_flavour", H5T_NATIVE_INT32, c.truth_flavour, f);  // kFlavourNames index; -1: none
    h5write(g, "pt", H5T_NATIVE_FLOAT, c.pt, f);
    h5write(g, "eta", H5T_NATIVE_FLOAT, c.eta, f);
    h5write(g, "phi", H5T_NATIVE_FLOAT, c.phi, f);
    h5write(g, "mass", H5T_NATIVE_FLOAT, c.mass, f);
    for (int k = 0; k < 6; ++k) h5write(g, kProbNames[k], H5T_NATIVE_FLOAT, c.prob[k], f);
    h5write(g, "target_pt", H5T_NATIVE_FLOAT, c.target_pt, f);
    h5write_strings(g, "model", c.model, f);
    h5write_strings(g, "model_version", c.version, f);
    h5write_strings(g, "model_sha256", c.sha256, f);
    h5write_strings(g, "inference_mode", c.mode, f);
    H5Gclose(g);
    // /inputs/<name> [jets, channels, points], row i = jet i of /jets, when every jet kept its inputs.
    const size_t jets = c.event.size();
    if (jets > 0 && c.inputs[0].size() == jets * kInputLayout[0].channels * kInputLayout[0].points) {
      hid_t ig = H5Gcreate2(file, "inputs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      for (int k = 0; k < 6; ++k)
        h5write_3d(ig, kInputLayout[k].name, c.inputs[k], kInputLayout[k].channels, kInputLayout[k].points, f);
      H5Gclose(ig);
    }
    hid_t fg = H5Gcreate2(file, "failed_events", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5write(fg, "event", H5T_NATIVE_UINT64, c.failed_event, f);
    h5write_strings(fg, "component", c.failed_component, f);
    h5write_strings(fg, "message", c.failed_message, f);
    H5Gclose(fg);
  } catch (...) {
    H5Fclose(file);
    throw;
  }
  H5Fclose(file);
  log(qf::LogLevel::Info, "wrote " + std::to_string(rows_) + " jets, " + std::to_string(failed_rows_) +
                              " failed events to " + f);
}

}  // namespace jet_tagging
