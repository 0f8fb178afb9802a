// Component set of the jet-tagging pipeline.
#include "jet_tagging.hpp"

namespace jet_tagging {
void add_components(qf::Application& app) {
  std::string type = app.get_parameter<std::string>("source.type", "generator");
  if (type == "generator") app.add<GeneratorSource>("source");
  else if (type == "hepmc") app.add<HepMC3Source>("source");
  else
    throw quiver::Error(quiver::ErrorCode::InvalidArgument,
                        "parameter 'source.type': expected generator or hepmc, got '" + type + "'");
  app.add<JetClustering>("jets");
  app.add<ParticleNetTagger>("inference");
  app.add<JetTagWriter>("writer");
}
}  // namespace jet_tagging

