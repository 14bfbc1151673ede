// Command etcd is etcd v3.7 built from the module proxy, so the harness in
// internal/etcdtest can test against current etcd as well as Debian's 3.4
// without a prebuilt download. It lives in its own module so that the root
// module never depends on the etcd server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
