// quiver::Error as Python exceptions: quiver.Error(RuntimeError) with one subclass per error code,
// carrying the code and where it happened (model, node, tensor, file, offset) as attributes.
#include <array>

#include "python/common.hpp"

namespace quiver::python {

namespace {

struct ErrorClass {
  ErrorCode code;
  const char* code_name;  // the ErrorCode enumerator: the exception's `code`
  const char* name;
  PyObject* extra_base;  // a built-in exception the class also derives from, or null
  const char* doc;
};

// Set at import; exception classes live as long as the interpreter (module attributes hold them too).
PyObject* g_base = nullptr;
std::array<PyObject*, 9> g_classes{};

std::array<ErrorClass, 9> classes() {
  return {{
      {ErrorCode::InvalidArgument, "InvalidArgument", "InvalidArgument", PyExc_ValueError,
       "Bad input from the caller: an unknown or missing input, a wrong dtype or shape, a bad option."},
      {ErrorCode::NotFound, "NotFound", "NotFound", PyExc_LookupError, "An unknown model, version, tensor or file."},
      {ErrorCode::Unsupported, "Unsupported", "Unsupported", PyExc_NotImplementedError,
       "Valid but not implemented here: an operator, a dtype, an option this build does not have."},
      {ErrorCode::Parse, "Parse", "ParseError", PyExc_ValueError, "A malformed model or data file (truncated, corrupt)."},
      {ErrorCode::Unavailable, "Unavailable", "Unavailable", nullptr, "No server reachable and no fallback, or a model not ready."},
      {ErrorCode::DeadlineExceeded, "DeadlineExceeded", "DeadlineExceeded", nullptr, "The request's deadline passed."},
      {ErrorCode::ResourceExhausted, "ResourceExhausted", "ResourceExhausted", nullptr, "A queue was full or a message too large."},
      {ErrorCode::Cancelled, "Cancelled", "Cancelled", nullptr, "The request was cancelled (e.g. its client was closed)."},
      {ErrorCode::Internal, "Internal", "InternalError", nullptr, "A bug in Quiver: please report it with the message."},
  }};
}

size_t index_of(ErrorCode c) {
  auto cs = classes();
  for (size_t i = 0; i < cs.size(); ++i)
    if (cs[i].code == c) return i;
  return cs.size() - 1;  // Internal
}

}  // namespace

py::object error_object(const Error& e) {
  const size_t i = index_of(e.code());
  py::object exc = py::handle(g_classes[i])(py::str(e.what()));
  const ErrorWhere& w = e.where();
  exc.attr("code") = py::str(classes()[i].code_name);
  exc.attr("message") = py::str(e.message());
  exc.attr("model") = py::str(w.model);
  exc.attr("node") = py::str(w.node);
  exc.attr("tensor") = py::str(w.tensor);
  exc.attr("file") = py::str(w.file);
  exc.attr("offset") = w.offset >= 0 ? py::object(py::int_(w.offset)) : py::object(py::none());
  return exc;
}

void register_errors(py::module_& m) {
  g_base = PyErr_NewExceptionWithDoc(
      "quiver.Error",
      "Base class of every Quiver error. Attributes: code (e.g. 'InvalidArgument'), message, and where it\n"
      "happened: model, node, tensor, file (empty strings when unknown) and offset (None when unknown).",
      PyExc_RuntimeError, nullptr);
  if (!g_base) throw py::error_already_set();
  m.add_object("Error", py::handle(g_base));
  auto cs = classes();
  for (size_t i = 0; i < cs.size(); ++i) {
    py::tuple bases = cs[i].extra_base ? py::make_tuple(py::handle(g_base), py::handle(cs[i].extra_base))
                                       : py::make_tuple(py::handle(g_base));
    std::string qual = std::string("quiver.") + cs[i].name;
    g_classes[i] = PyErr_NewExceptionWithDoc(qual.c_str(), cs[i].doc, bases.ptr(), nullptr);
    if (!g_classes[i]) throw py::error_already_set();
    m.add_object(cs[i].name, py::handle(g_classes[i]));
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object exc = error_object(e);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
}

}  // namespace quiver::python
