package main

import (
	"testing"

	"github.com/bulkhead-go/bulkhead/isotest"
)

func TestMain(m *testing.M) { isotest.Main(m) }
