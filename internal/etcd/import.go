package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// importChunk bounds the groups of one transaction of an import.
const importChunk = 100

// Import writes values (group ID -> the store's value) into an empty
// prefix, once: it returns false, writing nothing, if the prefix holds
// groups or had an import. source names what is imported.
//
// An import larger than one transaction is claimed first ("pending"
// marker), written in chunks, then marked done. If it is interrupted, the
// next Import of the same source completes it (rewriting the same
// values), so what ends up in etcd is all of it; meanwhile replicas may
// show part of it.
func (j *Journal) Import(ctx context.Context, values map[string][]byte, source string) (bool, error) {
	marker := j.key(metaDir, "imported")
	groups := j.key(groupsDir, "")
	ctx, cancel := context.WithTimeout(ctx, j.timeout*time.Duration(len(values)/importChunk+2))
	defer cancel()
	resp, err := j.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(marker), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(groups), "=", 0).WithPrefix(),
	).Then(clientv3.OpPut(marker, "pending "+source)).Else(clientv3.OpGet(marker)).Commit()
	if err != nil {
		return false, fmt.Errorf("claim the import: %w", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || string(kvs[0].Value) != "pending "+source {
			return false, nil // groups there, or imported before
		}
		j.logger.Warn("completing an interrupted import", "source", source)
	}
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := j.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("write imported groups: %w", err)
		}
		ops, size = ops[:0], 0
		return nil
	}
	for id, v := range values {
		_, value := j.encodeNew(v)
		if len(ops) == importChunk || size+len(value)+len(id)+requestOverhead > j.maxReq {
			if err := flush(); err != nil {
				return false, err
			}
		}
		ops = append(ops, clientv3.OpPut(j.key(groupsDir, id), string(value)))
		size += len(value) + len(id) + 64
	}
	if err := flush(); err != nil {
		return false, err
	}
	if _, err := j.cli.Put(ctx, marker, "done "+source); err != nil {
		return false, fmt.Errorf("mark the import done: %w", err)
	}
	return true, nil
}
