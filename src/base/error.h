// Errors: bad input is an awq::Error whose message names the file, the tensor and what was
// expected. Internal invariants are asserts. Both carry fmt-style messages.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace awq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace awq

// AWQ_CHECK(cond, "tensor {} has shape {}, expected {}", ...) throws awq::Error when cond is false.
#define AWQ_CHECK(cond, ...)               \
  do {                                     \
    if (!(cond)) ::awq::fail(__VA_ARGS__); \
  } while (0)
