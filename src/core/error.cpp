#include "quiver/core/error.hpp"

namespace quiver {

std::string_view error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::NotFound: return "not found";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Parse: return "parse error";
    case ErrorCode::Unavailable: return "unavailable";
    case ErrorCode::DeadlineExceeded: return "deadline exceeded";
    case ErrorCode::ResourceExhausted: return "resource exhausted";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Internal: return "internal error";
  }
  return "error";
}

std::string format_where(const ErrorWhere& w) {
  std::string s;
  auto add = [&s](const char* label, const std::string& v) {
    if (v.empty()) return;
    if (!s.empty()) s += ", ";
    s += label;
    s += " '";
    s += v;
    s += "'";
  };
  add("model", w.model);
  add("file", w.file);
  if (w.offset >= 0) {
    if (!s.empty()) s += ", ";
    s += "offset " + std::to_string(w.offset);
  }
  add("node", w.node);
  add("tensor", w.tensor);
  return s;
}

std::string format_error(ErrorCode code, const std::string& message, const ErrorWhere& w) {
  const std::string where = format_where(w);
  std::string out(error_code_name(code));
  if (!where.empty()) out += " (" + where + ")";
  out += ": ";
  out += message;
  return out;
}

std::string format_error_message_first(ErrorCode code, const std::string& message, const ErrorWhere& w) {
  const std::string where = format_where(w);
  return message + " (" + std::string(error_code_name(code)) + (where.empty() ? "" : "; " + where) + ")";
}

Error::Error(ErrorCode code, std::string message, ErrorWhere where)
    : std::runtime_error(format_error(code, message, where)),
      code_(code), message_(std::move(message)), where_(std::move(where)) {}

Error Error::with_context(const ErrorWhere& outer) const {
  ErrorWhere w = where_;
  if (w.model.empty()) w.model = outer.model;
  if (w.node.empty()) w.node = outer.node;
  if (w.tensor.empty()) w.tensor = outer.tensor;
  if (w.file.empty()) w.file = outer.file;
  if (w.offset < 0) w.offset = outer.offset;
  return Error(code_, message_, w);
}

void throw_error(ErrorCode code, std::string message, ErrorWhere where) {
  throw Error(code, std::move(message), std::move(where));
}

}  // namespace quiver
