// The jet_tagging flow plugin: `quiver run examples/jet_tagging/config.toml`.
#include "jet_tagging.hpp"

QUIVER_FLOW_PLUGIN(app) { jet_tagging::add_components(app); }
