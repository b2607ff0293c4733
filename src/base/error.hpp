// Typed errors shared by every component.
//
// An Error carries the kernel errno that the bpf() boundary would return, the
// place it is about (instruction index, byte offset, line/column, object or
// section name), and a human message. Components never throw across their
// public API: they return Result<T>.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace userbpf {

struct Error {
  int code = EINVAL;                  // kernel errno value (positive)
  std::string message;                // kernel-style text where one exists
  std::optional<std::size_t> insn;    // instruction index the error is about
  std::optional<std::size_t> offset;  // byte offset in the input
  std::optional<std::size_t> line;    // 1-based source line (assembler)
  std::optional<std::size_t> column;  // 1-based source column (assembler)
  std::string where;                  // object / section / symbol prefix

  // One-line rendering: "where: insn 3: message" / "line 4:7: message".
  [[nodiscard]] std::string to_string() const;
};

inline Error make_error(int code, std::string message) {
  Error e;
  e.code = code;
  e.message = std::move(message);
  return e;
}

inline Error insn_error(int code, std::size_t insn, std::string message) {
  Error e = make_error(code, std::move(message));
  e.insn = insn;
  return e;
}

// A minimal expected<T, Error> (std::expected is C++23).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>
struct Ok {};
using Status = Result<Ok>;

}  // namespace userbpf
