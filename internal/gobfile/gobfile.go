// Package gobfile reads and writes the persistence file of
// prometheus/pushgateway (--persistence.file): a Go gob encoding of its
// metric groups, each metric family as a protobuf blob. Speaking the same
// format lets users switch between the reference and pushgate, in either
// direction, without losing what was pushed.
//
// The types below mirror the reference's storage types field by field; gob
// matches struct fields by name, so their Go type names do not matter.
package gobfile

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Groups maps a grouping key ID to its group, as the reference's
// GroupingKeyToMetricGroup does.
type Groups map[string]Group

// Group is one metric group.
type Group struct {
	Labels  map[string]string
	Metrics map[string]TimestampedFamily
}

// TimestampedFamily is a family with the time it was pushed.
type TimestampedFamily struct {
	Timestamp            time.Time
	GobbableMetricFamily *Family
}

// Family is a MetricFamily that gob encodes as its protobuf encoding.
type Family dto.MetricFamily

// GobEncode implements gob.GobEncoder.
func (f *Family) GobEncode() ([]byte, error) {
	return proto.Marshal((*dto.MetricFamily)(f))
}

// GobDecode implements gob.GobDecoder.
func (f *Family) GobDecode(b []byte) error {
	return proto.Unmarshal(b, (*dto.MetricFamily)(f))
}

// Read decodes the file at path. A missing file is no error and no groups.
func Read(path string) (Groups, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Groups{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open persistence file: %w", err)
	}
	defer f.Close()
	return decode(f, path)
}

func decode(r io.Reader, path string) (Groups, error) {
	groups := Groups{}
	if err := gob.NewDecoder(r).Decode(&groups); err != nil {
		if errors.Is(err, io.EOF) {
			// An empty file: written by nobody, or truncated to nothing.
			return nil, fmt.Errorf("persistence file %s is empty: %w", path, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("decode persistence file %s: %w", path, err)
	}
	return groups, nil
}

// Write replaces the file at path atomically: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory, so a crash leaves either the old or the new file, never a torn
// one.
func Write(path string, groups Groups) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".in_progress.")
	if err != nil {
		return fmt.Errorf("create temporary persistence file: %w", err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				err = errors.Join(err, tmp.Close())
			}
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if err := gob.NewEncoder(tmp).Encode(groups); err != nil {
		return fmt.Errorf("encode persistence file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync persistence file: %w", err)
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close persistence file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename persistence file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory of persistence file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of persistence file: %w", err)
	}
	return nil
}

// RemoveStale removes temporary files a crash left next to path.
func RemoveStale(path string) error {
	matches, err := filepath.Glob(path + ".in_progress.*")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range matches {
		errs = append(errs, os.Remove(m))
	}
	return errors.Join(errs...)
}
