-- keyplane: rotate the TDE certificate of chain dbm to version 2.
-- New:
--   [dbm_v2]: O=keyplane tests,CN=TDE protector 2, thumbprint 0x40B3DCA404DBA987168ABA494AD33F6119279599, valid 2026-12-04 to 2046-11-29
-- Kept (backups made under them still need them; never drop them here):
--   [dbm_v1]: CN=dbm, thumbprint 0x9E00202C7055170AE891B333E15DBDC62C568326, valid 2018-05-15 to 2019-05-15
-- Write the files with: keyplane sqlserver export --chain dbm --version 2 --out DIR
-- Each step runs with: sqlcmd -S INSTANCE -i FILE -v CERT_DIR="DIR" PVK_PASSWORD="..."

-- Step 1: the new certificate on every instance, before any database switches
-- (every availability group replica must be able to open the database key).

-- on sql-prod-1
USE master;
GO
IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599)
    CREATE CERTIFICATE [dbm_v2]
        FROM FILE = '$(CERT_DIR)\dbm_v2.cer'
        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\dbm_v2.pvk',
                          DECRYPTION BY PASSWORD = '$(PVK_PASSWORD)');
GO

-- on sql-prod-2\AG
USE master;
GO
IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599)
    CREATE CERTIFICATE [dbm_v2]
        FROM FILE = '$(CERT_DIR)\dbm_v2.cer'
        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\dbm_v2.pvk',
                          DECRYPTION BY PASSWORD = '$(PVK_PASSWORD)');
GO

-- Step 2: each database's encryption key re-encrypted by the new certificate, where
-- the policy lists it (an availability group's primary; the data is not re-encrypted).

-- on sql-prod-1
USE [Sales];
GO
ALTER DATABASE ENCRYPTION KEY
    ENCRYPTION BY SERVER CERTIFICATE [dbm_v2];
GO

-- on sql-prod-1
USE [HR];
GO
ALTER DATABASE ENCRYPTION KEY
    ENCRYPTION BY SERVER CERTIFICATE [dbm_v2];
GO

-- Step 3: every database's encryptor is the new certificate (a row with 'old'
-- is a database still to switch).

-- on sql-prod-1
SELECT DB_NAME(database_id) AS database_name,
       CASE WHEN encryptor_thumbprint = 0x40B3DCA404DBA987168ABA494AD33F6119279599 THEN 'new' ELSE 'old' END AS encryptor
FROM sys.dm_database_encryption_keys
WHERE DB_NAME(database_id) IN ('Sales', 'HR');
GO

-- Then: keyplane rotate dbm --activate
