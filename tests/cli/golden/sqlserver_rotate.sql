-- keyplane: rotate the TDE certificate of chain dbm to version 2.
-- New:
--   [dbm_v2]: O=keyplane tests,CN=TDE protector 2, thumbprint 0x40B3DCA404DBA987168ABA494AD33F6119279599, valid 2026-12-04 to 2046-11-29
-- Kept (backups made under them still need them; never drop them here):
--   [dbm_v1]: CN=dbm, thumbprint 0x9E00202C7055170AE891B333E15DBDC62C568326, valid 2018-05-15 to 2019-05-15
-- Write the files with: keyplane sqlserver export --chain dbm --version 2 --out DIR
-- and copy them where every instance below can read them. This script connects to
-- each instance itself (sqlcmd mode: sqlcmd, or SSMS with SQLCMD Mode on):
--   sqlcmd -i rotate.sql -v CERT_DIR="DIR"
-- with PVK_PASSWORD in the environment (it stays out of the process list; the value
-- is what the export printed how to get), or as one more -v.
:on error exit

-- Step 1: the new certificate on every instance, before any database switches
-- (every availability group replica must be able to open the database key).

:CONNECT sql-prod-1
USE master;
GO
IF EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599
           AND pvt_key_encryption_type = 'NA')
    RAISERROR('keyplane: certificate 0x40B3DCA404DBA987168ABA494AD33F6119279599 is here without its private key: drop it and run again', 16, 1);
ELSE IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599)
    CREATE CERTIFICATE [dbm_v2]
        FROM FILE = '$(CERT_DIR)\dbm_v2.cer'
        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\dbm_v2.pvk',
                          DECRYPTION BY PASSWORD = '$(PVK_PASSWORD)');
GO

:CONNECT sql-prod-2\AG
USE master;
GO
IF EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599
           AND pvt_key_encryption_type = 'NA')
    RAISERROR('keyplane: certificate 0x40B3DCA404DBA987168ABA494AD33F6119279599 is here without its private key: drop it and run again', 16, 1);
ELSE IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599)
    CREATE CERTIFICATE [dbm_v2]
        FROM FILE = '$(CERT_DIR)\dbm_v2.cer'
        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\dbm_v2.pvk',
                          DECRYPTION BY PASSWORD = '$(PVK_PASSWORD)');
GO

-- Step 2: each database's encryption key re-encrypted by the new certificate, where
-- the policy lists it (an availability group's primary; the data is not re-encrypted).

:CONNECT sql-prod-1
USE [Sales];
GO
ALTER DATABASE ENCRYPTION KEY
    ENCRYPTION BY SERVER CERTIFICATE [dbm_v2];
GO
USE [HR];
GO
ALTER DATABASE ENCRYPTION KEY
    ENCRYPTION BY SERVER CERTIFICATE [dbm_v2];
GO

-- Step 3: every database's encryptor is the new certificate (a row with 'old'
-- is a database still to switch).

:CONNECT sql-prod-1
SELECT DB_NAME(database_id) AS database_name,
       CASE WHEN encryptor_thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599 THEN 'new' ELSE 'old' END AS encryptor
FROM sys.dm_database_encryption_keys
WHERE DB_NAME(database_id) IN (N'Sales', N'HR');
GO

-- Then: keyplane rotate dbm --activate
