// Package packaging holds the Debian package of pushgate: the nfpm
// configuration (nfpm.yaml), the maintainer scripts (scripts/), the default
// flags file installed as /etc/default/pushgate (default) and the mapping of
// `git describe` to a Debian version (deb-version.sh). `make deb` builds the
// package; the systemd unit it ships is contrib/pushgate.service.
//
// The package has no Go code. Its tests check the version mapping and, as
// root (or with `sudo -n`), build the package, install, run, remove,
// reinstall, upgrade and purge it on this machine (TestDeb).
package packaging
