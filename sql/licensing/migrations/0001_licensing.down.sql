-- Reverts 0001_licensing.up.sql: drops every table (and with them their
-- indexes and constraints), children first. No CASCADE, so an object a later
-- migration hung on these tables makes this fail loudly instead of vanishing.
DROP TABLE approvals;
DROP TABLE agreements;
DROP TABLE licensees;
DROP TABLE brands;
