// Bouncy Castle and JDK OCSP clients against a live Certcloud responder (tests/integration/
// test_java_interop.py compiles and runs this). One result per line, parsed by the test.
//
//   certid <ocsp-url> <ca.pem> <cert.pem>     BC requests in four CertID shapes; for each,
//                                             whether CertificateID.equals finds its answer
//   bc-pkix <ocsp-url> <ca.pem> <cert.pem> <seconds>
//                                             BC's CertPathValidator now, then (after a line on
//                                             stdin) at a date <seconds> later, in one JVM, so
//                                             BC's OCSP response cache must replace its entry
//   jdk-pkix <ocsp-url> <ca.pem> <cert.pem>   the JDK's CertPathValidator, ocsp.enable=true

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.math.BigInteger;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.Collections;
import java.util.Date;
import java.util.EnumSet;
import java.util.List;

import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.ocsp.CertID;
import org.bouncycastle.asn1.oiw.OIWObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.cert.jcajce.JcaX509CertificateHolder;
import org.bouncycastle.cert.ocsp.BasicOCSPResp;
import org.bouncycastle.cert.ocsp.CertificateID;
import org.bouncycastle.cert.ocsp.CertificateStatus;
import org.bouncycastle.cert.ocsp.OCSPReqBuilder;
import org.bouncycastle.cert.ocsp.OCSPResp;
import org.bouncycastle.cert.ocsp.RevokedStatus;
import org.bouncycastle.cert.ocsp.SingleResp;
import org.bouncycastle.cert.ocsp.UnknownStatus;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

public final class OcspInterop {
    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        URI url = URI.create(args[1]);
        X509Certificate ca = load(args[2]);
        X509Certificate cert = load(args[3]);
        switch (args[0]) {
            case "certid" -> certIds(url, ca, cert);
            case "bc-pkix" -> bcTwice(url, ca, cert, Long.parseLong(args[4]));
            case "jdk-pkix" -> {
                Security.setProperty("ocsp.enable", "true");
                Security.setProperty("ocsp.responderURL", url.toString());
                CertPathValidator validator = CertPathValidator.getInstance("PKIX");
                System.out.println("jdk-pkix " + validate(validator, ca, cert, new Date(), null));
            }
            default -> throw new IllegalArgumentException(args[0]);
        }
    }

    private static X509Certificate load(String path) throws Exception {
        try (InputStream in = new FileInputStream(path)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(in);
        }
    }

    private static void certIds(URI url, X509Certificate ca, X509Certificate cert)
            throws Exception {
        Object[][] shapes = {
            {"sha1-null", new AlgorithmIdentifier(OIWObjectIdentifiers.idSHA1, DERNull.INSTANCE)},
            {"sha1-absent", new AlgorithmIdentifier(OIWObjectIdentifiers.idSHA1)},
            {"sha256-null", new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256, DERNull.INSTANCE)},
            {"sha256-absent", new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256)},
        };
        for (Object[] shape : shapes) {
            CertificateID id = certificateId((AlgorithmIdentifier) shape[1], ca,
                                             cert.getSerialNumber());
            byte[] request = new OCSPReqBuilder().addRequest(id).build().getEncoded();
            OCSPResp response = new OCSPResp(post(url, request));
            String found = "missing";
            if (response.getStatus() == OCSPResp.SUCCESSFUL) {
                BasicOCSPResp basic = (BasicOCSPResp) response.getResponseObject();
                for (SingleResp single : basic.getResponses()) {
                    if (single.getCertID().equals(id)) {
                        found = statusName(single.getCertStatus());
                    }
                }
            }
            System.out.println("certid " + shape[0] + " " + found);
        }
    }

    /** A CertID whose hash AlgorithmIdentifier is exactly {@code algorithm}. */
    private static CertificateID certificateId(AlgorithmIdentifier algorithm, X509Certificate ca,
                                               BigInteger serial) throws Exception {
        ASN1ObjectIdentifier oid = algorithm.getAlgorithm();
        CertID hashed = new CertificateID(
            new JcaDigestCalculatorProviderBuilder().build().get(new AlgorithmIdentifier(oid)),
            new JcaX509CertificateHolder(ca), serial).toASN1Primitive();
        return new CertificateID(new CertID(algorithm, hashed.getIssuerNameHash(),
                                            hashed.getIssuerKeyHash(), hashed.getSerialNumber()));
    }

    private static String statusName(CertificateStatus status) {
        if (status == CertificateStatus.GOOD) {
            return "good";
        }
        if (status instanceof RevokedStatus) {
            return "revoked";
        }
        return status instanceof UnknownStatus ? "unknown" : "other";
    }

    private static byte[] post(URI url, byte[] body) throws Exception {
        HttpURLConnection connection = (HttpURLConnection) new URL(url.toString())
            .openConnection();
        connection.setDoOutput(true);
        connection.setRequestMethod("POST");
        connection.setRequestProperty("Content-Type", "application/ocsp-request");
        try (OutputStream out = connection.getOutputStream()) {
            out.write(body);
        }
        try (InputStream in = connection.getInputStream()) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            in.transferTo(bytes);
            return bytes.toByteArray();
        }
    }

    private static void bcTwice(URI url, X509Certificate ca, X509Certificate cert, long later)
            throws Exception {
        Security.setProperty("ocsp.enable", "true");
        CertPathValidator validator = CertPathValidator.getInstance("PKIX", "BC");
        Date first = new Date();
        System.out.println("bc-pkix first " + validate(validator, ca, cert, first, url));
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        Date moved = new Date(first.getTime() + later * 1000);
        System.out.println("bc-pkix moved " + validate(validator, ca, cert, moved, url));
    }

    /** "good", "revoked", or "error" and the reason the path did not validate. */
    private static String validate(CertPathValidator validator, X509Certificate ca,
                                   X509Certificate cert, Date at, URI responder)
            throws Exception {
        CertPath path = CertificateFactory.getInstance("X.509")
            .generateCertPath(List.of(cert));
        PKIXParameters params = new PKIXParameters(
            Collections.singleton(new TrustAnchor(ca, null)));
        params.setDate(at);
        params.setRevocationEnabled(true);
        if (responder != null) {
            PKIXRevocationChecker checker = (PKIXRevocationChecker) validator
                .getRevocationChecker();
            checker.setOcspResponder(responder);
            checker.setOptions(EnumSet.of(PKIXRevocationChecker.Option.NO_FALLBACK));
            params.addCertPathChecker(checker);
        }
        try {
            validator.validate(path, params);
            return "good";
        } catch (CertPathValidatorException e) {
            // the JDK gives the reason; Bouncy Castle 1.72 says so in the message only
            if (e.getReason() == CertPathValidatorException.BasicReason.REVOKED
                    || String.valueOf(e.getMessage()).startsWith("certificate revoked")) {
                return "revoked";
            }
            Throwable cause = e;
            StringBuilder why = new StringBuilder("error");
            while (cause != null) {
                why.append(": ").append(cause.getMessage());
                cause = cause.getCause();
            }
            return why.toString().replace('\n', ' ');
        }
    }
}
