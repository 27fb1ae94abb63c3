// Package ingest turns a provider's POST into durable state: it finds the
// source, authenticates the raw bytes with the source's provider, parses them
// into hub terms and hands everything to hub.Store.Ingest, which stores the
// message, applies the ordering rules and records the resulting events in one
// transaction. A caller acknowledges the provider only when Receive returns
// nil: by then the message is on disk.
//
// Refused requests (unknown source, bad signature, oversized body) leave an
// audit row, never the body. Authenticated messages that the provider package
// cannot map are stored as quarantined for an operator, never dropped.
package ingest
