// Test helper: the real CMS/HEP models in ../shared/models/hep that every engine must reproduce.
#pragma once
#include <string>

namespace quiver::test {

inline const std::string kHep = std::string(QUIVER_SHARED_DIR) + "/models/hep/";
inline const char* const kModels[] = {"deepboostedjet_resnet", "deepdoublex_bvl_102x", "deepdoublex_ddb_94x_unsorted",
                                      "deepjet_run3",          "deepvertex_phase1",    "higgs_interaction_net",
                                      "hls4ml_three_layer",    "part_ak4",             "particlenet_ak4_hlt",
                                      "particlenet_ak8_hlt",   "ticl_energy_id",       "ticl_supercls"};

}  // namespace quiver::test
