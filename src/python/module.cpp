// The Python module quiver._quiver (imported by the package quiver, src/python/quiver/__init__.py).
#include "python/common.hpp"

PYBIND11_MODULE(_quiver, m) {
  m.doc() = "Quiver's inference engine and client for Python (see the package quiver)";
  m.attr("__version__") = QUIVER_PYTHON_VERSION;
  quiver::python::register_errors(m);
  quiver::python::register_session(m);
#ifdef QUIVER_PYTHON_HAVE_CLIENT
  quiver::python::register_client(m);
#endif
}
