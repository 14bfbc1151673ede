package ui

import (
	"net/http"
	"time"
)

// statusPage is the data of the status page.
type statusPage struct {
	BuildInfo   map[string]string
	Flags       map[string]string
	StartTime   time.Time
	Groups      int
	Series      int
	Bytes       int64
	Storage     *StorageState
	StorageErr  string
	Admin       bool
	ExternalURL string
}

// Status serves build information, flags, start time, the storage state
// and the store's size.
func (u *UI) Status(w http.ResponseWriter, _ *http.Request) {
	stats := u.store.Stats()
	d := &statusPage{
		BuildInfo: u.opts.BuildInfo,
		Flags:     u.opts.Flags,
		StartTime: u.opts.StartTime,
		Groups:    stats.Groups,
		Series:    stats.Series,
		Bytes:     int64(stats.Bytes),
		Admin:     u.opts.EnableAdmin,
	}
	if u.opts.ExternalURL != nil {
		d.ExternalURL = u.opts.ExternalURL.String()
	}
	if u.opts.Storage != nil {
		st := u.opts.Storage()
		d.Storage = &st
		if st.Err != nil {
			d.StorageErr = st.Err.Error()
		}
	}
	u.render(w, http.StatusOK, "status.html", u.newPage("Status", "status", d))
}
