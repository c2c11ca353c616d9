// A durable consumer's filter as canonical text (segments/FORMAT.md 8.9): the filter fields of a
// Query that differ from their defaults, as one JSON object with its keys in a fixed order. Two
// filters match the same events exactly when their texts are equal byte for byte, so the text kept
// in the consumer's file tells whether an open passes the filter the cursor was committed under.
#pragma once

#include <string>

#include "keel/query.h"

namespace keel::consumers {

// Keys, in this order, each present only when its field is set or differs from its default:
// entity, entity_prefix, lane, clock_from, clock_to, scope, kind, category, correlation_id,
// sequence_from, sequence_to, hlc_from, hlc_to. Numbers in decimal; ids as 32 lowercase hex
// digits; HLCs as [wall_ms, logical]; strings in double quotes with `"` and `\` escaped by a
// backslash, bytes below 0x20 and 0x7f as \u00XX, other bytes as they are. The page fields (order,
// after, limit, with_payload) are not part of a filter. Every event: "{}".
std::string filter_text(const Query& filter);

}  // namespace keel::consumers
