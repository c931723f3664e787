// UTF-8 and Unicode helpers for the tokenizer: code point iteration, the validity rules that
// Rust's String::from_utf8_lossy applies (Hugging Face tokenizers decode through it), the
// character classes that HF's added-token matching uses (\s and \w of Rust's regex crate), and
// Unicode normalization forms (utf8proc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace awq::tok {

// Appends the UTF-8 encoding of code point `cp` to `out`.
void append_utf8(std::string& out, char32_t cp);
std::string utf8_of(char32_t cp);

// Decodes the code point starting at s[i] of a *valid* UTF-8 string and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);

// Length in bytes of the valid UTF-8 sequence at s[i], or 0 when s[i..] does not start with one.
// `incomplete` is set when the bytes there are a valid but truncated prefix that runs to the end.
// `bad_len` is the length of the maximal invalid subpart (Unicode's "maximal subpart" rule, which
// Rust's from_utf8_lossy follows) when the sequence is invalid.
size_t utf8_sequence_length(std::string_view s, size_t i, bool* incomplete, size_t* bad_len);

bool is_valid_utf8(std::string_view s);
// Replaces every maximal invalid subpart (and a truncated tail) with U+FFFD, as from_utf8_lossy.
std::string utf8_lossy(std::string_view s);
// Number of bytes at the end of `s` that form a valid but incomplete UTF-8 sequence (0..3).
size_t incomplete_utf8_tail(std::string_view s);

// Rust regex's Unicode \s (the White_Space property) and \w (Alphabetic, marks, decimal numbers,
// connector punctuation, join controls), approximated with general categories for Alphabetic.
bool is_white_space(char32_t cp);
bool is_word_char(char32_t cp);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
std::string unicode_normalize(std::string_view s, NormalForm form);

}  // namespace awq::tok
