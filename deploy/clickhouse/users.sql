-- Touchline's ClickHouse users, least privilege, for releases with SQL access
-- control (20.4 and later; SQL SECURITY needs 24.2 or later). Run it once as
-- an administrator with access management, after replacing the passwords;
-- `touchline migrate` then runs as touchline_admin. Database `cx`: rename it
-- with the database. users.xml beside it is the form for ClickHouse 18.16.
-- create-users.sh beside it runs this file with the placeholder passwords
-- and `cx` replaced from environment variables (docker-compose.yml does so
-- at ClickHouse's first start); keep each user's `IDENTIFIED WITH
-- sha256_password BY '...'` as it is, which the script matches.
--
-- - touchline_admin: `touchline migrate` and `touchline forget` (creates and
--   alters the tables and views of cx, deletes a customer's rows).
-- - touchline: `touchline run` inserts and reads cx, nothing else.
-- - dashboards: reads the views of cx (v_*), not the tables under them and
--   not the raw bytes of dead letters.

CREATE ROLE IF NOT EXISTS touchline_admin_role;
CREATE ROLE IF NOT EXISTS touchline_pipeline_role;
CREATE ROLE IF NOT EXISTS touchline_dashboards_role;

GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, ALTER, INSERT, SELECT ON cx.* TO touchline_admin_role;
GRANT INSERT, SELECT ON cx.* TO touchline_pipeline_role;
-- One line per view of the output contract (SPEC §7) and v_messages.
GRANT SELECT ON cx.v_timeline TO touchline_dashboards_role;
GRANT SELECT ON cx.v_identities TO touchline_dashboards_role;
GRANT SELECT ON cx.v_messages TO touchline_dashboards_role;
GRANT SELECT ON cx.v_contacts TO touchline_dashboards_role;
GRANT SELECT ON cx.v_journeys TO touchline_dashboards_role;
GRANT SELECT ON cx.v_customers TO touchline_dashboards_role;
GRANT SELECT ON cx.v_channel_daily TO touchline_dashboards_role;
GRANT SELECT ON cx.v_consistency_daily TO touchline_dashboards_role;

-- Views created by touchline_admin run with its rights (SQL SECURITY
-- DEFINER), so that a reader of a view needs no grant on its tables.
CREATE SETTINGS PROFILE IF NOT EXISTS touchline_admin_profile SETTINGS default_normal_view_sql_security = 'DEFINER';

CREATE USER IF NOT EXISTS touchline_admin IDENTIFIED WITH sha256_password BY 'CHANGE-ME-admin'
    SETTINGS PROFILE 'touchline_admin_profile';
CREATE USER IF NOT EXISTS touchline IDENTIFIED WITH sha256_password BY 'CHANGE-ME-pipeline';
CREATE USER IF NOT EXISTS dashboards IDENTIFIED WITH sha256_password BY 'CHANGE-ME-dashboards';

GRANT touchline_admin_role TO touchline_admin;
GRANT touchline_pipeline_role TO touchline;
GRANT touchline_dashboards_role TO dashboards;
SET DEFAULT ROLE touchline_admin_role TO touchline_admin;
SET DEFAULT ROLE touchline_pipeline_role TO touchline;
SET DEFAULT ROLE touchline_dashboards_role TO dashboards;
