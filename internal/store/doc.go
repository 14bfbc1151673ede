// Package store holds the pushed groups and decides which pushes are
// accepted.
//
// A push is checked against indexes of everything stored (metric name to
// type, series identity to owning group) instead of re-gathering the whole
// store, so its cost is proportional to the push, not to the store. Checks,
// sanitizing and encoding happen before the store lock is taken; under the
// lock only index lookups and updates run, and a new immutable Group value
// is swapped in. Readers (scrapes, API, UI) take a View: a consistent,
// immutable snapshot of all groups that never shows half of a push.
//
// The rules are those of prometheus/pushgateway (its README and, where the
// README is silent, storage/diskmetricstore.go and client_golang's
// Gatherers): a push is rejected when the exposition of all groups together
// with the gateway's own metrics would be inconsistent: one name with two
// types, one series (name and label set) twice, or a histogram or summary
// whose _count, _sum or _bucket series collide with another family. One
// deliberate difference: a rejected push never leaves the store
// inconsistent (see Store.Push).
package store
