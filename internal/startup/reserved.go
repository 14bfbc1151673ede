package startup

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgate/pushgate/internal/store"
)

// Reserved lists the gateway's own metric families, which pushed families of
// the same name must match in type: what g gathers now plus extra, the
// families of vectors that have no series until first used (push.Reserved,
// server.Reserved). Call it once every part registered its metrics, before
// the store is built.
func Reserved(g prometheus.Gatherer, extra ...store.Reserved) ([]store.Reserved, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather own metrics: %w", err)
	}
	reserved := make([]store.Reserved, 0, len(extra)+len(mfs))
	reserved = append(reserved, extra...)
	for _, mf := range mfs {
		reserved = append(reserved, store.Reserved{Name: mf.GetName(), Type: mf.GetType()})
	}
	return reserved, nil
}
