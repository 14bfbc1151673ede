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
	own, err := store.ReservedFrom(g)
	if err != nil {
		return nil, fmt.Errorf("gather own metrics: %w", err)
	}
	return append(extra, own...), nil
}
