// StreamDecoder: decode_raw() of a short window of ids, of which the first is context that was
// already emitted. Keeping one context token means decoders that treat the first token specially
// (Strip of the SentencePiece leading space, Metaspace) see the new tokens as non-initial; raw
// decoding keeps byte tokens as bytes, so a character split over several tokens is held back
// until its last byte arrives instead of becoming U+FFFD.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace awq {

StreamDecoder::StreamDecoder(Tokenizer tokenizer, bool skip_special)
    : tok_(std::move(tokenizer)), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  window_.push_back(id);
  const std::string raw = tok_.decode_raw(window_, skip_special_);
  const size_t complete = raw.size() - tok::incomplete_utf8_tail(raw);
  std::string out;
  if (complete > emitted_)
    out = tok::utf8_lossy(std::string_view(raw).substr(emitted_, complete - emitted_));
  emitted_ = std::max(emitted_, complete);
  // Once nothing is pending, the newest id becomes the only context. A skipped special token
  // decodes to nothing, so it cannot serve as context: keep the window until a real token comes.
  const bool skipped = skip_special_ && tok_.is_special(id);
  if (emitted_ == raw.size() && window_.size() > 1 && !skipped) {
    window_.assign(1, id);
    emitted_ = tok_.decode_raw(window_, skip_special_).size();
  }
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!window_.empty()) {
    const std::string raw = tok_.decode_raw(window_, skip_special_);
    if (raw.size() > emitted_) out = tok::utf8_lossy(std::string_view(raw).substr(emitted_));
  }
  window_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace awq
