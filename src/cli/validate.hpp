// `quiver validate` (issue #15) and the paths other parts of the program add to it. The table, the
// comparisons and the golden files are in cmd_backends_validate.cpp; each part adds the paths it can
// run from its own cmd_<part>_validate.cpp (the client part: a local `quiver serve` called over gRPC
// and HTTP, and the client's in-process fallback), so a new backend or transport adds itself.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::cli::validate {

struct DataSet {
  std::string name;
  std::vector<Tensor> inputs;
  std::vector<Tensor> expected;  // the data set's outputs; empty: none
};

// One way of running the model on a data set: the outputs in the model's output order, or a thrown
// error. A reproducible path must give the reproducible CPU result's exact bytes; the others agree
// with the reference within the tolerance.
struct Path {
  std::string name;
  bool reproducible = false;
  std::function<std::vector<Tensor>(const DataSet&)> run;
  int64_t tiled_to = 0;  // > 0: run gives the data set's rows tiled to this batch (tile_rows)
};

struct Subject {
  std::string model_path;   // the model file as given
  const ModelInfo& info;    // of the model loaded in this process
  const std::vector<DataSet>& data;
};

// Adds the paths a part can run for `subject`, and a note for each one it cannot run here, saying
// why. What the paths hold (a server process, a temporary repository) lives in their run functions
// and ends with the last copy of them: validate drops its paths before it returns or throws.
using PathAdder = std::function<void(const Subject& subject, std::vector<Path>& paths, std::vector<std::string>& notes)>;

struct PathRegistrar {
  PathRegistrar(int order, PathAdder adder);
};
std::vector<std::pair<int, PathAdder>>& path_adders();

}  // namespace quiver::cli::validate
