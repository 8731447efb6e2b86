package server

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkhead-go/bulkhead/examples/licensing/licensingdb"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DemoTenants are the tenants the ephemeral demo provisions.
var DemoTenants = []struct {
	ID   tenancy.ID
	Name string
}{
	{"acme-brands", "Acme Brands"},
	{"globex-licensing", "Globex Licensing"},
	{"initech-toys", "Initech Toys"},
}

// Seed provisions tenant id (if absent) and writes sample brands,
// licensees and agreements through its scoped transaction.
func Seed(ctx context.Context, p *provision.Provisioner, st Store, id tenancy.ID, name string, brands int) (*tenancy.Tenant, error) {
	t, err := p.Create(tenancy.WithActor(ctx, "demo-seed"), id, &provision.CreateOpts{Name: name})
	if err != nil {
		return nil, fmt.Errorf("provisioning demo tenant %q: %w", id, err)
	}
	err = st.Write(ctx, id, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		lic, err := q.CreateLicensee(ctx, licensingdb.CreateLicenseeParams{Name: name + " Apparel Ltd", ContactEmail: "deals@apparel.example", Country: "GB"})
		if err != nil {
			return err
		}
		lic2, err := q.CreateLicensee(ctx, licensingdb.CreateLicenseeParams{Name: name + " Toys Inc", ContactEmail: "legal@toys.example", Country: "US"})
		if err != nil {
			return err
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range brands {
			desc := "confidential " + string(id) + " brand"
			b, err := q.CreateBrand(ctx, licensingdb.CreateBrandParams{Name: fmt.Sprintf("%s %d", name, i+1), Description: &desc})
			if err != nil {
				return err
			}
			for j, l := range []licensingdb.Licensee{lic, lic2} {
				_, err := q.CreateAgreement(ctx, licensingdb.CreateAgreementParams{
					BrandID: b.ID, LicenseeID: l.ID, Title: fmt.Sprintf("%s x %s", b.Name, l.Name),
					Territory: []string{l.Country, "DE"}, StartDate: pgtype.Date{Time: start, Valid: true},
					EndDate: pgtype.Date{Time: start.AddDate(2+j, 0, 0), Valid: true}, RoyaltyRateBps: int32(800 + 150*j),
					MinimumGuaranteeMinor: 5_000_000, MinimumGuaranteeCurrency: "USD",
				})
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seeding demo tenant %q: %w", id, err)
	}
	return t, nil
}
